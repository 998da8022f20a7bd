-- Nodes named as culprits by a protocol (bad signature share, malformed or
-- undecryptable message). Recorded for operators and auditors; signing
-- retries exclude them.
CREATE TABLE misbehaviour (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id     INTEGER NOT NULL,
    key_id      TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);
CREATE INDEX misbehaviour_node ON misbehaviour (node_id);
