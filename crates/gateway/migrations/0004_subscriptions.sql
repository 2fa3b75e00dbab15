-- Cards on file: the processor's token and what may be shown; never the number.
CREATE TABLE payment_methods (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    consumer_id       TEXT NOT NULL REFERENCES consumers (id) ON DELETE RESTRICT,
    processor         TEXT NOT NULL,
    token             TEXT NOT NULL,
    brand             TEXT NOT NULL,
    last4             TEXT NOT NULL,
    exp_month         INTEGER NOT NULL,
    exp_year          INTEGER NOT NULL,
    failed            INTEGER NOT NULL DEFAULT 0,
    is_default        INTEGER NOT NULL DEFAULT 0,
    last_failure_code TEXT,
    last_decline_code TEXT,
    created_at        TEXT NOT NULL,
    removed_at        TEXT
) STRICT;
CREATE INDEX payment_methods_by_consumer ON payment_methods (consumer_id, seq);
CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (consumer_id)
    WHERE is_default = 1 AND removed_at IS NULL;

CREATE TABLE subscriptions (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    consumer_id    TEXT NOT NULL REFERENCES consumers (id) ON DELETE RESTRICT,
    plan_id        TEXT NOT NULL REFERENCES plans (id) ON DELETE RESTRICT,
    status         TEXT NOT NULL CHECK (status IN ('pending_approval', 'active', 'past_due', 'expired',
                                                   'rejected', 'canceled', 'suspended')),
    status_reason  TEXT,
    period_start   TEXT,
    period_end     TEXT,
    auto_renew     INTEGER NOT NULL CHECK (auto_renew IN (0, 1)),
    past_due_since TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    version        INTEGER NOT NULL
) STRICT;
CREATE INDEX subscriptions_by_status ON subscriptions (status, seq);
CREATE INDEX subscriptions_by_consumer ON subscriptions (consumer_id, seq);

-- Every charge attempt, with its result.
CREATE TABLE charges (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    consumer_id         TEXT NOT NULL REFERENCES consumers (id) ON DELETE RESTRICT,
    payment_method_id   TEXT,
    subscription_id     TEXT,
    amount_micros       INTEGER NOT NULL,
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    failure_code        TEXT,
    decline_code        TEXT,
    failure_message     TEXT,
    processor_charge_id TEXT,
    created_at          TEXT NOT NULL
) STRICT;
CREATE INDEX charges_by_consumer ON charges (consumer_id, seq);
