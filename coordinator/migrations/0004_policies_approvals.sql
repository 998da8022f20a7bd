-- The coordinator's copy of each key's policy documents, as the nodes
-- accepted them (SignedPolicy protobuf). The nodes enforce their own copies.
CREATE TABLE policies (
    key_id        TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    signed_policy BLOB    NOT NULL,
    applied_at    TEXT    NOT NULL,
    PRIMARY KEY (key_id, version)
);

-- Sign requests held for approvals, one per (requester, idempotency key).
CREATE TABLE pending_approvals (
    approval_id     TEXT    NOT NULL PRIMARY KEY,
    key_id          TEXT    NOT NULL,
    requester       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    signed_intent   BLOB    NOT NULL,
    intent_sha256   BLOB    NOT NULL,
    rule            TEXT    NOT NULL,
    approver_group  TEXT    NOT NULL,
    required        INTEGER NOT NULL CHECK (required >= 1),
    not_after_ms    INTEGER NOT NULL,
    summary         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    UNIQUE (requester, idempotency_key)
);

-- Approvals collected for a pending request, one per approver.
CREATE TABLE approvals (
    approval_id TEXT NOT NULL REFERENCES pending_approvals (approval_id),
    approver    TEXT NOT NULL,
    approval    BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (approval_id, approver)
);
