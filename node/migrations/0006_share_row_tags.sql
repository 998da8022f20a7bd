-- The tag authenticating a share row's columns: HMAC-SHA256 under a key
-- derived from the node's key-encryption key over the node id, key id,
-- epoch, scheme, status, threshold, participants, public key, and SHA-256
-- of the public key package and of the sealed share (see `store.rs`).
-- Written with every insert and status change, checked on every read.
-- Rows from before this migration have none and are refused when read.
ALTER TABLE key_shares ADD COLUMN row_tag BLOB;
