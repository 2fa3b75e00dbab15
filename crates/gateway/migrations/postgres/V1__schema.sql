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

-- Plans: prices and credits in micro-units of the plan's currency.
CREATE TABLE plans (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                text NOT NULL UNIQUE,
    name              text NOT NULL,
    currency          text NOT NULL,
    price_micros      bigint NOT NULL CHECK (price_micros >= 0),
    period            text NOT NULL CHECK (period IN ('month', 'year', 'none')),
    included_micros   bigint NOT NULL CHECK (included_micros >= 0),
    overage           text NOT NULL CHECK (overage IN ('block', 'charge_wallet')),
    approval_required boolean NOT NULL,
    apis              text NOT NULL,
    models            text NOT NULL,
    rate_limits       text NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    version           bigint NOT NULL
);
CREATE UNIQUE INDEX plans_name_unique ON plans (lower(name));

-- One wallet per consumer and currency; the balance is kept equal to the sum
-- of the ledger, in the same transaction as each entry.
CREATE TABLE wallets (
    consumer_id     text NOT NULL REFERENCES consumers (id) ON DELETE RESTRICT,
    currency        text NOT NULL,
    balance_micros  bigint NOT NULL,
    -- The sum of the nodes' leases on this wallet: never above the balance.
    reserved_micros bigint NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0),
    entries         bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz,
    PRIMARY KEY (consumer_id, currency),
    CONSTRAINT wallets_reserved_within_balance CHECK (reserved_micros <= greatest(balance_micros, 0))
);

CREATE TABLE ledger_entries (
    seq                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                   text NOT NULL UNIQUE,
    consumer_id          text NOT NULL,
    currency             text NOT NULL,
    kind                 text NOT NULL CHECK (kind IN ('top_up', 'usage', 'refund', 'adjustment', 'grant')),
    amount_micros        bigint NOT NULL,
    balance_after_micros bigint NOT NULL,
    reason               text NOT NULL,
    idempotency_key      text NOT NULL,
    actor                text NOT NULL,
    created_at           timestamptz NOT NULL,
    FOREIGN KEY (consumer_id, currency) REFERENCES wallets (consumer_id, currency),
    UNIQUE (consumer_id, currency, idempotency_key)
);
CREATE INDEX ledger_by_wallet ON ledger_entries (consumer_id, currency, seq);

-- The ledger is append-only.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

-- The gateway's payment settings: one row. Credentials are sealed with the
-- encryption key, which is never stored here.
CREATE TABLE payment_settings (
    id                  integer PRIMARY KEY CHECK (id = 1),
    processor           text NOT NULL,
    credentials_sealed  bytea,
    credentials_last4   text,
    accepted_currencies text NOT NULL,
    grace_days          integer NOT NULL CHECK (grace_days BETWEEN 0 AND 90),
    updated_at          timestamptz,
    version             bigint NOT NULL
);

-- Cards on file: the processor's token and what may be shown; never the number.
CREATE TABLE payment_methods (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                text NOT NULL UNIQUE,
    consumer_id       text NOT NULL REFERENCES consumers (id) ON DELETE RESTRICT,
    processor         text NOT NULL,
    token             text NOT NULL,
    brand             text NOT NULL,
    last4             text NOT NULL,
    exp_month         integer NOT NULL,
    exp_year          integer NOT NULL,
    failed            boolean NOT NULL DEFAULT false,
    is_default        boolean NOT NULL DEFAULT false,
    last_failure_code text,
    last_decline_code text,
    created_at        timestamptz NOT NULL,
    removed_at        timestamptz
);
CREATE INDEX payment_methods_by_consumer ON payment_methods (consumer_id, seq);
CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (consumer_id)
    WHERE is_default AND removed_at IS NULL;

CREATE TABLE subscriptions (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             text NOT NULL UNIQUE,
    consumer_id    text NOT NULL REFERENCES consumers (id) ON DELETE RESTRICT,
    plan_id        text NOT NULL REFERENCES plans (id) ON DELETE RESTRICT,
    status         text NOT NULL CHECK (status IN ('pending_approval', 'active', 'past_due', 'expired',
                                                   'rejected', 'canceled', 'suspended')),
    status_reason  text,
    period_start   timestamptz,
    period_end     timestamptz,
    auto_renew     boolean NOT NULL,
    past_due_since timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);
CREATE INDEX subscriptions_by_status ON subscriptions (status, seq);
CREATE INDEX subscriptions_by_consumer ON subscriptions (consumer_id, seq);

-- Every charge attempt, with its result.
CREATE TABLE charges (
    seq                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  text NOT NULL UNIQUE,
    consumer_id         text NOT NULL REFERENCES consumers (id) ON DELETE RESTRICT,
    payment_method_id   text,
    subscription_id     text,
    amount_micros       bigint NOT NULL,
    currency            text NOT NULL,
    status              text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    failure_code        text,
    decline_code        text,
    failure_message     text,
    processor_charge_id text,
    idempotency_key     text,
    created_at          timestamptz NOT NULL
);
CREATE INDEX charges_by_consumer ON charges (consumer_id, seq);
-- A subscription's period is charged at most once, whichever node runs it.
CREATE UNIQUE INDEX charges_once ON charges (subscription_id, idempotency_key)
    WHERE status = 'succeeded' AND idempotency_key IS NOT NULL;

-- Included credits used per subscription period (keyed by the period's
-- start as the data plane names it), updated with each settled call.
CREATE TABLE subscription_usage (
    subscription_id text NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    period_start    text NOT NULL,
    used_micros     bigint NOT NULL CHECK (used_micros >= 0),
    calls           bigint NOT NULL DEFAULT 0,
    -- The sum of the nodes' leases on this period's credits.
    reserved_micros bigint NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0),
    PRIMARY KEY (subscription_id, period_start)
);

-- What each node has set aside for its calls (see the SQLite store's
-- migration 0016): from a wallet (holder = consumer id, part = currency) or
-- from a period's credits (holder = subscription id, part = period start).
CREATE TABLE leases (
    kind          text NOT NULL CHECK (kind IN ('wallet', 'credits')),
    holder        text NOT NULL,
    part          text NOT NULL,
    node_id       text NOT NULL,
    amount_micros bigint NOT NULL CHECK (amount_micros > 0),
    PRIMARY KEY (kind, holder, part, node_id)
);
CREATE INDEX leases_by_node ON leases (node_id);

-- The call log in blocks of consecutive seqs (see the SQLite store's
-- migration 0012). `log_state.last_seq` hands out seqs: its row is locked by
-- each appending transaction until it commits, so seqs follow commit order
-- across nodes (a reader's cursor never passes a record committed later).
CREATE TABLE log_state (
    id       integer PRIMARY KEY CHECK (id = 1),
    last_seq bigint NOT NULL
);
INSERT INTO log_state (id, last_seq) VALUES (1, 0);

CREATE TABLE call_log_blocks (
    first_seq  bigint PRIMARY KEY,
    last_seq   bigint NOT NULL,
    records    integer NOT NULL,
    min_end_us bigint NOT NULL,
    max_end_us bigint NOT NULL,
    data       bytea NOT NULL
);

CREATE TABLE log_settings (
    id             integer PRIMARY KEY CHECK (id = 1),
    retention_days integer NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
    max_records    bigint CHECK (max_records >= 1000),
    bodies         text NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);

-- The nodes serving this instance and their last heartbeat.
CREATE TABLE nodes (
    id           text PRIMARY KEY,
    address      text NOT NULL,
    version      text NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    leads_jobs   boolean NOT NULL
);
