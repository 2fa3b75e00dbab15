-- The gateway's schema on PostgreSQL (the SQLite store's, migrations
-- 0001-0013, in PostgreSQL's types): times are timestamptz, money bigint
-- micro-units, flags boolean, JSON documents text (read back as written).
-- `seq` orders pages and cursors; any node may insert.

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE admin_tokens (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    secret_hash  bytea NOT NULL,
    scopes       text NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE TABLE teams (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    name        text NOT NULL,
    description text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint NOT NULL
);
CREATE UNIQUE INDEX teams_name_unique ON teams (lower(name));

CREATE TABLE audit_log (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    time       timestamptz NOT NULL,
    token_id   text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL,
    request_id text NOT NULL
);
CREATE INDEX audit_log_by_target ON audit_log (target, seq);

CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint bytea NOT NULL,
    state       text NOT NULL CHECK (state IN ('pending', 'done')),
    status      integer,
    headers     text,
    body        bytea,
    created_at  bigint NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE consumers (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    team_id     text NOT NULL REFERENCES teams (id) ON DELETE RESTRICT,
    name        text NOT NULL,
    contact     text NOT NULL,
    metadata    text NOT NULL,
    status      text NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint NOT NULL
);
CREATE UNIQUE INDEX consumers_team_name_unique ON consumers (team_id, lower(name));
CREATE INDEX consumers_by_team ON consumers (team_id, seq);

-- Consumer API keys `tg_<lookup>_<secret>`: found by `lookup`, verified
-- against the SHA-256 of the whole key; the key itself is never stored.
CREATE TABLE consumer_keys (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             text NOT NULL UNIQUE,
    consumer_id    text NOT NULL REFERENCES consumers (id) ON DELETE CASCADE,
    name           text NOT NULL,
    lookup         text NOT NULL UNIQUE,
    secret_hash    bytea NOT NULL,
    display_prefix text NOT NULL,
    allowed_apis   text NOT NULL,
    expires_at     timestamptz,
    grace_until    timestamptz,
    replaced_by    text,
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL
);
CREATE INDEX consumer_keys_by_consumer ON consumer_keys (consumer_id, seq);
CREATE INDEX consumer_keys_by_prefix ON consumer_keys (display_prefix text_pattern_ops);

-- Prompt-encapsulated APIs and their immutable versions.
CREATE TABLE prompt_apis (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text NOT NULL UNIQUE,
    slug            text NOT NULL UNIQUE,
    name            text NOT NULL,
    description     text NOT NULL,
    status          text NOT NULL CHECK (status IN ('draft', 'published', 'deprecated', 'retired')),
    current_version integer NOT NULL,
    deprecated_at   timestamptz,
    sunset_at       timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL
);

CREATE TABLE prompt_api_versions (
    api_id     text NOT NULL REFERENCES prompt_apis (id) ON DELETE CASCADE,
    number     integer NOT NULL,
    definition text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    PRIMARY KEY (api_id, number)
);

-- Versions never change once written.
CREATE FUNCTION prompt_api_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'prompt API versions are immutable';
END $$;
CREATE TRIGGER prompt_api_versions_immutable BEFORE UPDATE ON prompt_api_versions
    FOR EACH ROW EXECUTE FUNCTION prompt_api_versions_immutable();

-- Model providers and their key pools. Key secrets are sealed with the
-- encryption key, which is never stored here.
CREATE TABLE providers (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text NOT NULL UNIQUE,
    name         text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('openai-compatible', 'anthropic')),
    base_url     text NOT NULL,
    currency     text NOT NULL,
    models       text NOT NULL,
    timeout_secs integer NOT NULL CHECK (timeout_secs BETWEEN 1 AND 3600),
    enabled      boolean NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint NOT NULL
);
CREATE UNIQUE INDEX providers_name_unique ON providers (lower(name));

CREATE TABLE provider_keys (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                text NOT NULL UNIQUE,
    provider_id       text NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    label             text NOT NULL,
    secret_sealed     bytea NOT NULL,
    last4             text NOT NULL,
    status            text NOT NULL
        CHECK (status IN ('active', 'exhausted', 'expired', 'invalid', 'disabled')),
    status_reason     text,
    status_changed_at timestamptz NOT NULL,
    priority          bigint NOT NULL CHECK (priority BETWEEN 0 AND 1000000),
    expires_at        timestamptz,
    requests          bigint NOT NULL DEFAULT 0,
    failures          bigint NOT NULL DEFAULT 0,
    tokens            bigint NOT NULL DEFAULT 0,
    last_used_at      timestamptz,
    created_at        timestamptz NOT NULL,
    version           bigint NOT NULL
);
CREATE INDEX provider_keys_by_provider ON provider_keys (provider_id, priority, seq);

-- Every status change of a key, kept after the key is deleted.
CREATE TABLE provider_key_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id      text NOT NULL,
    provider_id text NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    reason      text NOT NULL,
    actor       text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX provider_key_events_by_key ON provider_key_events (key_id, seq);
CREATE INDEX provider_key_events_by_provider ON provider_key_events (provider_id, seq);
