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
