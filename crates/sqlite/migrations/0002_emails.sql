-- The received log: one row per accepted email (its body lives in the body store).
-- id is the hyphenated UUIDv7, so text order is time order and pages follow the id.
CREATE TABLE emails (
    id          TEXT    NOT NULL PRIMARY KEY,
    received_at INTEGER NOT NULL,  -- unix milliseconds, when the email was made durable
    sender      TEXT,              -- MAIL FROM; NULL for the null reverse path <>
    recipients  TEXT    NOT NULL,  -- accepted RCPT TO addresses, one per line
    size        INTEGER NOT NULL,  -- body octets
    peer        TEXT,              -- client ip:port
    helo        TEXT,              -- HELO/EHLO name
    tls         INTEGER NOT NULL   -- 1 if the body arrived over TLS
) WITHOUT ROWID;

-- Time-window listings (since/until) range over this index.
CREATE INDEX emails_by_received_at ON emails (received_at, id);
