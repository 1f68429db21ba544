-- The received log: one row per accepted email (its body lives in the body store).
-- id is the UUIDv7: uuid order is byte order, which is time order, as EmailId sorts.
-- Times are unix milliseconds (BIGINT), as on SQLite: the domain passes its own clock
-- and keeps millisecond precision, and they round-trip exactly.
CREATE TABLE emails (
    id           UUID    NOT NULL PRIMARY KEY,
    received_at  BIGINT  NOT NULL,  -- unix ms, when the email was made durable
    sender       TEXT,              -- MAIL FROM; NULL for the null reverse path <>
    recipients   TEXT[]  NOT NULL,  -- accepted RCPT TO addresses, in order
    size         BIGINT  NOT NULL,  -- body octets
    peer         TEXT,              -- client ip:port
    helo         TEXT,              -- HELO/EHLO name
    tls          BOOLEAN NOT NULL,  -- the body arrived over TLS
    eight_bit    BOOLEAN NOT NULL,  -- 8BITMIME (see domain Encoding)
    smtputf8     BOOLEAN NOT NULL,
    utf8_headers BOOLEAN NOT NULL,
    evaluated    BOOLEAN NOT NULL DEFAULT FALSE  -- run through the forward evaluator
);

-- Time-window listings (since/until) range over this index.
CREATE INDEX emails_by_received_at ON emails (received_at, id);

-- The backlog of emails not yet evaluated, with their receipt time: the backlog reader
-- pages through it by id and the stats count and date it, from this index alone. It
-- stays as small as the backlog, however long the log grows.
CREATE INDEX emails_unevaluated ON emails (id, received_at) WHERE NOT evaluated;
