-- The processes serving this instance and their last heartbeat (one for a
-- SQLite store; the PostgreSQL store keeps the same table for its nodes).
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    leads_jobs   INTEGER NOT NULL CHECK (leads_jobs IN (0, 1))
) STRICT;
