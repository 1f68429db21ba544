-- The emails not yet evaluated, by the time they were received: /metrics counts them
-- and reads the oldest's age at every scrape from this index alone, however long the
-- received log is (emails_unevaluated is ordered by id, which is not receipt order).
CREATE INDEX emails_unevaluated_by_age ON emails (received_at) WHERE evaluated = 0;
