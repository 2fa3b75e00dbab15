-- Consumers belong to a team; a team with consumers cannot be deleted.
CREATE TABLE consumers (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    team_id     TEXT NOT NULL REFERENCES teams (id) ON DELETE RESTRICT,
    name        TEXT NOT NULL,
    contact     TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX consumers_team_name_unique ON consumers (team_id, lower(name));
CREATE INDEX consumers_by_team ON consumers (team_id, seq);

-- Consumer API keys `tg_<lookup>_<secret>`: found by `lookup`, verified
-- against the SHA-256 of the whole key; the key itself is never stored.
CREATE TABLE consumer_keys (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    consumer_id    TEXT NOT NULL REFERENCES consumers (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    lookup         TEXT NOT NULL UNIQUE,
    secret_hash    BLOB NOT NULL,
    display_prefix TEXT NOT NULL,
    allowed_apis   TEXT NOT NULL,
    expires_at     TEXT,
    grace_until    TEXT,
    replaced_by    TEXT,
    last_used_at   TEXT,
    revoked_at     TEXT,
    created_at     TEXT NOT NULL
) STRICT;
CREATE INDEX consumer_keys_by_consumer ON consumer_keys (consumer_id, seq);
CREATE INDEX consumer_keys_by_prefix ON consumer_keys (display_prefix);
