-- A recorded culprit stays excluded from the key's quorums until an operator
-- clears the record (after investigating the node).
ALTER TABLE misbehaviour ADD COLUMN cleared_at TEXT;
ALTER TABLE misbehaviour ADD COLUMN cleared_reason TEXT;
CREATE INDEX misbehaviour_key ON misbehaviour (key_id, node_id);
