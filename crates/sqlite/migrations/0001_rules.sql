-- Forwarding rules, one row per recipient pattern.
-- pattern_key is RecipientPattern::key(): the lower-cased match key, or '*@domain'.
-- resolve() looks up at most three keys by primary key, so it stays fast at any size.
CREATE TABLE rules (
    pattern_key  TEXT    NOT NULL PRIMARY KEY,
    domain       TEXT    NOT NULL,
    pattern      TEXT    NOT NULL,  -- the pattern as written (keeps local-part case)
    destinations TEXT    NOT NULL,  -- destination addresses, one per line
    updated_at   INTEGER NOT NULL DEFAULT (unixepoch())
) WITHOUT ROWID;

-- Listing by domain pages through this index in key order.
CREATE INDEX rules_by_domain ON rules (domain, pattern_key);
