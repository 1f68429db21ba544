-- Instances sharing the queue (ADR 0021). Each claim records the instance that made it;
-- each instance heartbeats; the leases of an instance that has been silent too long
-- are released for the others, and an instance that restarts releases only its own.
ALTER TABLE delivery_jobs ADD COLUMN claimed_by TEXT;

CREATE TABLE instances (
    id           TEXT   NOT NULL PRIMARY KEY,
    heartbeat_at BIGINT NOT NULL  -- unix ms, by the instance's own clock
);

-- The leases a silent instance held, found without reading the whole queue.
CREATE INDEX delivery_jobs_claimed_by ON delivery_jobs (claimed_by)
    WHERE claimed_by IS NOT NULL;
