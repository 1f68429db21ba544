-- Delivery jobs: one per (email, destination). A claimed job holds a lease token and
-- its next_attempt_at is moved to the end of the lease, so a job whose worker died is
-- simply due again: "due" is always state = 'pending' AND next_attempt_at <= now.
-- Times are unix ms from the callers' clocks (the port passes `now`), as on SQLite.
CREATE TABLE delivery_jobs (
    email_id        UUID    NOT NULL,
    destination_key TEXT    COLLATE "C" NOT NULL,  -- EmailAddress::match_key(): the unique part
    destination     TEXT    NOT NULL,              -- the address as written
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,  -- unix ms
    lease           BIGINT,            -- token of the current claim, NULL when unclaimed
    last_reply      TEXT,
    created_at      BIGINT  NOT NULL,  -- unix ms, when (last) enqueued
    PRIMARY KEY (email_id, destination_key)
);

-- Claims take the earliest due jobs from this index; final jobs are not in it.
CREATE INDEX delivery_jobs_due ON delivery_jobs (next_attempt_at) WHERE state = 'pending';

-- Lease tokens: one per claim, unique across every instance sharing the database, so
-- a token can never match a lease some other claim holds (random tokens only make that
-- unlikely).
CREATE SEQUENCE delivery_leases AS BIGINT;
