-- Signed heads form a chain of their own: `head_index` counts a process's
-- heads from 1 and `previous_head` is the id (SHA-256 of the signing bytes)
-- of the head before it, 32 zero bytes for the first. Rows written before
-- this migration keep NULL in both: legacy heads, signed under the v1
-- layout, which verify against the log but take no part in the head chain.
ALTER TABLE audit_heads ADD COLUMN head_index INTEGER CHECK (head_index >= 1);
ALTER TABLE audit_heads ADD COLUMN previous_head BLOB;
