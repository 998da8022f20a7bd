-- Keys known to the coordinator: public data only. The coordinator never
-- holds a share.
CREATE TABLE keys (
    key_id             TEXT    PRIMARY KEY,
    scheme             TEXT    NOT NULL,
    threshold          INTEGER NOT NULL CHECK (threshold >= 1),
    participants       TEXT    NOT NULL,
    public_key         BLOB    NOT NULL,
    public_key_package BLOB    NOT NULL,
    epoch              INTEGER NOT NULL DEFAULT 0,
    label              TEXT    NOT NULL DEFAULT '',
    created_at         TEXT    NOT NULL
);

-- Idempotency of signing requests, scoped by requester: the same key with
-- the same request returns the stored response; with a different request it
-- is refused.
CREATE TABLE sign_requests (
    requester       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    request_digest  BLOB NOT NULL,
    response        BLOB,
    created_at      TEXT NOT NULL,
    -- Unix seconds of the latest claim; an old unfinished claim may be taken over.
    claimed_at      INTEGER NOT NULL,
    PRIMARY KEY (requester, idempotency_key)
);
