-- Gateway instances the console manages. Admin tokens are NOT here: they live
-- in the OS keyring under tollgate/<id>/admin-token.
CREATE TABLE instances (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    base_url    TEXT NOT NULL,
    environment TEXT NOT NULL CHECK (environment IN ('prod', 'staging', 'dev')),
    color       TEXT NOT NULL,
    ca_cert_pem TEXT,
    tls_verify  INTEGER NOT NULL CHECK (tls_verify IN (0, 1)),
    position    INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX instances_name_unique ON instances (lower(name));

-- Last known health of each instance, so the fleet overview has something to
-- show at start, before the first background check.
CREATE TABLE instance_health (
    instance_id     TEXT PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    report          TEXT NOT NULL,
    checked_at      TEXT NOT NULL
) STRICT;

-- Console preferences (current instance, …).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
