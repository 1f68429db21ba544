-- Final jobs (delivered, failed) leave the hot table for delivery_history, so that
-- delivery_jobs, which every claim and heartbeat scans and locks, holds only pending
-- work however long the history grows (ADR 0021). Same columns and primary key as
-- delivery_jobs: a job is in exactly one of the two tables, and moves between them in
-- one transaction (to history when its outcome is recorded, back on a forced enqueue).
CREATE TABLE delivery_history (
    email_id        UUID    NOT NULL,
    destination_key TEXT    COLLATE "C" NOT NULL,
    destination     TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,  -- unix ms: when the outcome was recorded
    lease           BIGINT,            -- always NULL: nobody holds a final job
    last_reply      TEXT,
    created_at      BIGINT  NOT NULL,
    claimed_by      TEXT,              -- always NULL, as lease
    PRIMARY KEY (email_id, destination_key)
);

-- The final jobs recorded so far move in this migration's transaction.
WITH moved AS (
    DELETE FROM delivery_jobs WHERE state <> 'pending'
    RETURNING email_id, destination_key, destination, state, attempts, next_attempt_at,
              last_reply, created_at)
INSERT INTO delivery_history (email_id, destination_key, destination, state, attempts,
                              next_attempt_at, last_reply, created_at)
SELECT email_id, destination_key, destination, state, attempts, next_attempt_at,
       last_reply, created_at
FROM moved;
