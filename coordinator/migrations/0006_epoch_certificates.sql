-- Commit certificates of redistributed epochs (refresh, reshare). Written
-- before any node switches, in the same transaction that moves the key's
-- record to the new epoch; `completed_at` is set once every node that held
-- or holds a share confirmed the switch. A restarted coordinator resumes
-- every certificate without it.
CREATE TABLE epoch_certificates (
    key_id       TEXT    NOT NULL,
    epoch        INTEGER NOT NULL CHECK (epoch >= 1),
    -- Serialized sigil.v1.CommitCertificate.
    certificate  BLOB    NOT NULL,
    -- JSON list of the nodes to tell: the previous and the new participants.
    notify       TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    completed_at TEXT,
    PRIMARY KEY (key_id, epoch)
);
