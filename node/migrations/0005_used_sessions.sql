-- Protocol session ids this node has accepted. The in-memory session table
-- forgets them on restart; this one does not, so a restarted node never
-- accepts a used id again. A row is kept until `forget_ms` (the session's
-- deadline plus the session time-to-live, as in memory) and then pruned
-- with expired intents. Signing sessions record theirs in the same grouped
-- transaction as their intent's opening: no commit of its own.
CREATE TABLE used_sessions (
    session_id BLOB    NOT NULL PRIMARY KEY,
    forget_ms  INTEGER NOT NULL
) WITHOUT ROWID;
