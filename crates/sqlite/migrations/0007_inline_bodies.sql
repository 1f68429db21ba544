-- Small bodies kept in their email's row, written in the record's own insert: one
-- commit per email instead of a body file (or body rows) made durable first. NULL when
-- the body is in the body store. Last in the row, so reads of the other columns never
-- load it (SQLite reads a row's overflow pages only for the columns asked for).
ALTER TABLE emails ADD COLUMN body BLOB;
