-- Email bodies in the database: a head row per body being written or stored, and the
-- bytes in chunks of up to 256 KiB, so a body streams in and out a chunk at a time.
--
-- A head is a draft (committed = 0) while its writer writes chunks, and becomes the
-- body of email_id when its writer commits: until then open() does not see it. Each
-- writer has a head of its own (body), so a retried write of the same email never mixes
-- its chunks with an earlier attempt's. AUTOINCREMENT: a body number is never reused, so
-- a writer whose draft was swept cannot add chunks to someone else's body.
CREATE TABLE email_bodies (
    body       INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    email_id   TEXT    NOT NULL,           -- the hyphenated EmailId
    committed  INTEGER NOT NULL DEFAULT 0, -- 1 once the writer committed
    size       INTEGER NOT NULL DEFAULT 0, -- octets, set at commit
    chunks     INTEGER NOT NULL DEFAULT 0, -- chunk rows, set at commit
    created_at INTEGER NOT NULL            -- unix ms, when the writer started
);

-- At most one committed body per email: open() and delete() look it up here.
CREATE UNIQUE INDEX email_bodies_committed ON email_bodies (email_id) WHERE committed = 1;
-- Drafts by age: the sweep of abandoned drafts (a crash mid-write) reads only these.
CREATE INDEX email_bodies_drafts ON email_bodies (created_at) WHERE committed = 0;

-- Deleting a head (delete, abort, the sweep) deletes its chunks with it. A rowid table,
-- not WITHOUT ROWID: SQLite advises rowid tables for rows this large.
CREATE TABLE email_body_chunks (
    body INTEGER NOT NULL REFERENCES email_bodies (body) ON DELETE CASCADE,
    seq  INTEGER NOT NULL, -- 0, 1, 2, ... in body order
    data BLOB    NOT NULL,
    PRIMARY KEY (body, seq)
);
