-- Forwarding rules, one row per recipient pattern.
-- pattern_key is RecipientPattern::key(): the lower-cased match key, or '*@domain'.
-- COLLATE "C": keys compare byte by byte, as on SQLite and in Rust, so list pages and
-- their cursors follow the same order on every backend whatever the server's locale.
CREATE TABLE rules (
    pattern_key  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    domain       TEXT COLLATE "C" NOT NULL,
    pattern      TEXT NOT NULL,               -- the pattern as written (keeps local-part case)
    destinations TEXT[] NOT NULL,             -- destination addresses as written, in order
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Listing by domain pages through this index in key order.
CREATE INDEX rules_by_domain ON rules (domain, pattern_key);
