-- Instance-wide facts: instance id, first start time.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Admin tokens: only a SHA-256 of the secret is kept.
CREATE TABLE admin_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
) STRICT;

-- `seq` orders pages: a cursor is the last seq seen, so rows inserted while a
-- client pages never shift what it has not read yet.
CREATE TABLE teams (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX teams_name_unique ON teams (lower(name));

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    time       TEXT NOT NULL,
    token_id   TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    request_id TEXT NOT NULL
) STRICT;

-- Idempotency-Key records for POSTs, scoped per admin token.
CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    status      INTEGER,
    headers     TEXT,
    body        BLOB,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;
