-- Model providers and their key pools. Key secrets are sealed with the
-- encryption key, which is never stored here; only their last four
-- characters are kept in clear, for display.
CREATE TABLE providers (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    kind         TEXT NOT NULL CHECK (kind IN ('openai-compatible', 'anthropic')),
    base_url     TEXT NOT NULL,
    currency     TEXT NOT NULL,
    models       TEXT NOT NULL,          -- JSON array of ProviderModel
    timeout_secs INTEGER NOT NULL CHECK (timeout_secs BETWEEN 1 AND 3600),
    enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    version      INTEGER NOT NULL
) STRICT;

CREATE TABLE provider_keys (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    provider_id       TEXT NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    label             TEXT NOT NULL,
    secret_sealed     BLOB NOT NULL,
    last4             TEXT NOT NULL,
    status            TEXT NOT NULL
        CHECK (status IN ('active', 'exhausted', 'expired', 'invalid', 'disabled')),
    status_reason     TEXT,
    status_changed_at TEXT NOT NULL,
    priority          INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 1000000),
    expires_at        TEXT,
    requests          INTEGER NOT NULL DEFAULT 0,
    failures          INTEGER NOT NULL DEFAULT 0,
    tokens            INTEGER NOT NULL DEFAULT 0,
    last_used_at      TEXT,
    created_at        TEXT NOT NULL,
    version           INTEGER NOT NULL
) STRICT;
CREATE INDEX provider_keys_by_provider ON provider_keys (provider_id, priority, seq);

-- Every status change of a key, kept after the key is deleted.
CREATE TABLE provider_key_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id      TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL
) STRICT;
CREATE INDEX provider_key_events_by_key ON provider_key_events (key_id, seq);
CREATE INDEX provider_key_events_by_provider ON provider_key_events (provider_id, seq);
