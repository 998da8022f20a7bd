-- Sigil audit log (sigil-audit). Lives in the process's own database, next
-- to the daemon's tables; its migrations are tracked in their own table
-- (`_sigil_audit_migrations`), so they never mix with the daemon's.
--
-- One row per record, in chain order. Every column is covered by
-- `record_hash` (see the crate docs for the byte layout); `quorum` and
-- `culprits` are JSON arrays of node ids, `digest` and the hashes raw bytes.
CREATE TABLE audit_records (
    sequence      INTEGER PRIMARY KEY CHECK (sequence >= 1),
    process       TEXT    NOT NULL,
    timestamp     TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    key_id        TEXT    NOT NULL,
    request_id    TEXT    NOT NULL,
    digest        BLOB    NOT NULL,
    quorum        TEXT    NOT NULL,
    session_id    TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,
    culprits      TEXT    NOT NULL,
    detail        TEXT    NOT NULL,
    previous_hash BLOB    NOT NULL,
    record_hash   BLOB    NOT NULL
);

CREATE INDEX audit_records_timestamp ON audit_records (timestamp);
CREATE INDEX audit_records_key_id ON audit_records (key_id) WHERE key_id <> '';
CREATE INDEX audit_records_actor ON audit_records (actor);
CREATE INDEX audit_records_action ON audit_records (action);

-- Signed heads: (sequence, head_hash) of the log at `timestamp`, signed with
-- the process's certificate key. `certificate_chain` is a JSON array of
-- lowercase-hex DER certificates, end-entity first.
CREATE TABLE audit_heads (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    process           TEXT    NOT NULL,
    sequence          INTEGER NOT NULL CHECK (sequence >= 0),
    head_hash         BLOB    NOT NULL,
    timestamp         TEXT    NOT NULL,
    signature         BLOB    NOT NULL,
    certificate_chain TEXT    NOT NULL
);

CREATE INDEX audit_heads_sequence ON audit_heads (sequence);

-- Append-only, as far as the application is concerned: an UPDATE or DELETE
-- issued by mistake fails. (Someone with the file can drop these; that is
-- what the hash chain and the signed heads are for.)
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;

CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;

CREATE TRIGGER audit_heads_no_update BEFORE UPDATE ON audit_heads
BEGIN
    SELECT RAISE(ABORT, 'signed heads are append-only');
END;

CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
BEGIN
    SELECT RAISE(ABORT, 'signed heads are append-only');
END;
