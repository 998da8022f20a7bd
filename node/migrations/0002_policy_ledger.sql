-- Policy documents applied at this node. Every version is kept; the highest
-- is in force. `signed_policy` is the SignedPolicy exactly as received
-- (document and officer signatures), so the node can prove what it enforces.
CREATE TABLE policies (
    key_id          TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    document_sha256 BLOB    NOT NULL,
    signed_policy   BLOB    NOT NULL,
    applied_at      TEXT    NOT NULL,
    PRIMARY KEY (key_id, version)
);

-- Intents this node has accepted: the replay record (kept at least until the
-- intent expires) and the once-only key of its spend counting.
CREATE TABLE intents (
    requester      TEXT    NOT NULL,
    intent_id      TEXT    NOT NULL,
    intent_sha256  BLOB    NOT NULL,
    key_id         TEXT    NOT NULL,
    not_after_ms   INTEGER NOT NULL,
    -- 1 once the intent's spend is counted against this node's limits.
    counted        INTEGER NOT NULL DEFAULT 0 CHECK (counted IN (0, 1)),
    -- Signing sessions this intent has opened here.
    sessions       INTEGER NOT NULL DEFAULT 0 CHECK (sessions >= 0),
    created_ms     INTEGER NOT NULL,
    PRIMARY KEY (requester, intent_id)
);

-- Spends counted against this node's rolling limits: one row per asset of a
-- counted intent. Amounts are exact decimal integers in base units.
CREATE TABLE spends (
    key_id        TEXT    NOT NULL,
    asset         TEXT    NOT NULL,
    amount        TEXT    NOT NULL,
    intent_sha256 BLOB    NOT NULL,
    at_ms         INTEGER NOT NULL
);

CREATE INDEX spends_by_key_asset ON spends (key_id, asset, at_ms);
