-- How each email is encoded, to tell the next hop (8BITMIME, SMTPUTF8): a bit set, see
-- emails/row.rs. Emails stored before this column existed read as 7-bit ASCII, which is
-- how they were relayed then.
ALTER TABLE emails ADD COLUMN encoding INTEGER NOT NULL DEFAULT 0;
