-- Key shares held by this node. The share itself is sealed (AEAD under the
-- node's key-encryption key, associated data binding key id, node id and
-- epoch); everything else here is public.
CREATE TABLE key_shares (
    key_id             TEXT    NOT NULL,
    epoch              INTEGER NOT NULL CHECK (epoch >= 0),
    scheme             TEXT    NOT NULL,
    -- 'pending': a finished DKG not yet committed by the coordinator (never signs);
    -- 'current' signs; 'next' is a refreshed/reshared epoch awaiting commit;
    -- 'retired' is kept until it is safe to delete.
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'current', 'next', 'retired')),
    threshold          INTEGER NOT NULL CHECK (threshold >= 1),
    participants       TEXT    NOT NULL,
    public_key         BLOB    NOT NULL,
    public_key_package BLOB    NOT NULL,
    sealed_share       BLOB    NOT NULL,
    created_at         TEXT    NOT NULL,
    PRIMARY KEY (key_id, epoch)
);

CREATE UNIQUE INDEX key_shares_one_current ON key_shares (key_id) WHERE status = 'current';
CREATE UNIQUE INDEX key_shares_one_next ON key_shares (key_id) WHERE status = 'next';
