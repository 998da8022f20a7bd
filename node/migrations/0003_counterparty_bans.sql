-- DKLs23 bans held by this node: counterparties it caught cheating on a
-- key's reusable pairwise state (AbortKind::BanCounterparty). The engine
-- requires that this node never runs another session of the key with them
-- (continuing lets the counterparty extract this node's share), so a ban
-- survives restarts and no operator call removes it. It is lifted only in
-- the transaction that commits a refreshed or reshared epoch of the key,
-- which gives every party fresh pairwise state (or removes the node).
CREATE TABLE counterparty_bans (
    key_id       TEXT    NOT NULL,
    counterparty INTEGER NOT NULL CHECK (counterparty BETWEEN 1 AND 65535),
    reason       TEXT    NOT NULL,
    -- Hex id of the session that failed with the ban.
    session_id   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (key_id, counterparty)
);
