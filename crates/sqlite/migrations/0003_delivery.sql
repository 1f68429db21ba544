-- Delivery jobs: one per (email, destination). A claimed job holds a lease token and
-- its next_attempt_at is moved to the end of the lease, so a job whose worker died is
-- simply due again: "due" is always state = 'pending' AND next_attempt_at <= now.
CREATE TABLE delivery_jobs (
    email_id        TEXT    NOT NULL,
    destination_key TEXT    NOT NULL,  -- EmailAddress::match_key(): the unique part
    destination     TEXT    NOT NULL,  -- the address as written
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,  -- unix ms
    lease           INTEGER,           -- token of the current claim, NULL when unclaimed
    last_reply      TEXT,
    created_at      INTEGER NOT NULL,  -- unix ms, when (last) enqueued
    PRIMARY KEY (email_id, destination_key)
) WITHOUT ROWID;

CREATE INDEX delivery_jobs_due ON delivery_jobs (next_attempt_at) WHERE state = 'pending';

-- Emails stored but not yet run through the forward evaluator (a crash can leave some).
ALTER TABLE emails ADD COLUMN evaluated INTEGER NOT NULL DEFAULT 0;
CREATE INDEX emails_unevaluated ON emails (id) WHERE evaluated = 0;
