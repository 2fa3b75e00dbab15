-- Plans: prices and credits in micro-units of the plan's currency.
CREATE TABLE plans (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    currency          TEXT NOT NULL,
    price_micros      INTEGER NOT NULL CHECK (price_micros >= 0),
    period            TEXT NOT NULL CHECK (period IN ('month', 'year', 'none')),
    included_micros   INTEGER NOT NULL CHECK (included_micros >= 0),
    overage           TEXT NOT NULL CHECK (overage IN ('block', 'charge_wallet')),
    approval_required INTEGER NOT NULL CHECK (approval_required IN (0, 1)),
    apis              TEXT NOT NULL,
    models            TEXT NOT NULL,
    rate_limits       TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    version           INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX plans_name_unique ON plans (lower(name));

-- One wallet per consumer and currency. The balance is kept equal to the sum
-- of the ledger, in the same transaction as each entry. A consumer with money
-- history cannot be deleted (suspend it instead).
CREATE TABLE wallets (
    consumer_id     TEXT NOT NULL REFERENCES consumers (id) ON DELETE RESTRICT,
    currency        TEXT NOT NULL,
    balance_micros  INTEGER NOT NULL,
    reserved_micros INTEGER NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0),
    entries         INTEGER NOT NULL DEFAULT 0,
    updated_at      TEXT,
    PRIMARY KEY (consumer_id, currency)
) STRICT;

CREATE TABLE ledger_entries (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT NOT NULL UNIQUE,
    consumer_id          TEXT NOT NULL,
    currency             TEXT NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('top_up', 'usage', 'refund', 'adjustment', 'grant')),
    amount_micros        INTEGER NOT NULL,
    balance_after_micros INTEGER NOT NULL,
    reason               TEXT NOT NULL,
    idempotency_key      TEXT NOT NULL,
    actor                TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    FOREIGN KEY (consumer_id, currency) REFERENCES wallets (consumer_id, currency),
    UNIQUE (consumer_id, currency, idempotency_key)
) STRICT;
CREATE INDEX ledger_by_wallet ON ledger_entries (consumer_id, currency, seq);

-- The ledger is append-only.
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
