-- The emails not yet evaluated, with the time each was received: the backlog reader
-- pages through them by id, and /metrics counts them and finds the oldest, all from this
-- one partial index. One index rather than a second one ordered by age, because every
-- accepted email enters it and every evaluation takes one out, on the mail path.
DROP INDEX emails_unevaluated;
CREATE INDEX emails_unevaluated ON emails (id, received_at) WHERE evaluated = 0;
