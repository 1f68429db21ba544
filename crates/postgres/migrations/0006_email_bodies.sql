-- Email bodies in the database: a head row per body being written or stored, and the
-- bytes in chunks of up to 256 KiB, so a body streams in and out a chunk at a time and
-- every statement stays short (no transaction lasts as long as an SMTP DATA).
--
-- A head is a draft (NOT committed) while its writer writes chunks, each in a statement
-- of its own, and becomes the body of email_id in the commit's one short transaction:
-- until then open() does not see it. Each writer has a head of its own (body), so a
-- retried write of the same email never mixes its chunks with an earlier attempt's; an
-- identity is never reused, so a writer whose draft was swept cannot add chunks to
-- someone else's body.
CREATE TABLE email_bodies (
    body       BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email_id   UUID        NOT NULL,
    committed  BOOLEAN     NOT NULL DEFAULT FALSE,
    size       BIGINT      NOT NULL DEFAULT 0,  -- octets, set at commit
    chunks     BIGINT      NOT NULL DEFAULT 0,  -- chunk rows, set at commit
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()  -- the server's clock, shared by all instances
);

-- At most one committed body per email: open() and delete() look it up here.
CREATE UNIQUE INDEX email_bodies_committed ON email_bodies (email_id) WHERE committed;
-- Drafts by age: the sweep of abandoned drafts (a crash mid-write) reads only these.
CREATE INDEX email_bodies_drafts ON email_bodies (created_at) WHERE NOT committed;

-- Deleting a head (delete, abort, the sweep) deletes its chunks in the same statement.
-- The foreign key also makes a chunk written after its draft was swept fail, instead of
-- staying behind with no head.
CREATE TABLE email_body_chunks (
    body BIGINT NOT NULL REFERENCES email_bodies (body) ON DELETE CASCADE,
    seq  BIGINT NOT NULL,  -- 0, 1, 2, ... in body order
    data BYTEA  NOT NULL,
    PRIMARY KEY (body, seq)
);
