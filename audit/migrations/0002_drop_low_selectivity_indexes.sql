-- Every append writes one page per index, and every commit is an fsync'd
-- WAL write: the indexes on `actor` and `action` (a handful of distinct
-- values each) cost more on the signing path than they save auditors, whose
-- queries are bounded by time (`audit_records_timestamp`) or key
-- (`audit_records_key_id`). Filters on actor and action are applied on top.
DROP INDEX IF EXISTS audit_records_actor;
DROP INDEX IF EXISTS audit_records_action;
