-- When an epoch stopped signing: retired shares are deleted once they are
-- older than the configured grace period.
ALTER TABLE key_shares ADD COLUMN retired_at TEXT;
