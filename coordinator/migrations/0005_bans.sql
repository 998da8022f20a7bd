-- An exclusion that a DKLs23 ban mandates (AbortKind::BanCounterparty,
-- reported by a node in `sigil-banned`): the engine requires the node never
-- to take part in a session of the key again, so an operator cannot clear
-- it. Only a key refresh or reshare, which gives every party fresh pairwise
-- state or removes the node, lifts it.
ALTER TABLE misbehaviour ADD COLUMN ban INTEGER NOT NULL DEFAULT 0 CHECK (ban IN (0, 1));
