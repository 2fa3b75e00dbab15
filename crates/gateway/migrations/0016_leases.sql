-- Leases: what each node has set aside for its calls, from a wallet's balance
-- (`wallet`: holder = consumer id, part = currency) or from a subscription
-- period's included credits (`credits`: holder = subscription id, part = the
-- period's start). A node spends from its leases without asking the database
-- again; its usage windows take what it spent from both the lease and the
-- pot in one transaction. `wallets.reserved_micros` and
-- `subscription_usage.reserved_micros` are the sums of the leases on them.
CREATE TABLE leases (
    kind          TEXT NOT NULL CHECK (kind IN ('wallet', 'credits')),
    holder        TEXT NOT NULL,
    part          TEXT NOT NULL,
    node_id       TEXT NOT NULL,
    amount_micros INTEGER NOT NULL CHECK (amount_micros > 0),
    PRIMARY KEY (kind, holder, part, node_id)
) STRICT;
CREATE INDEX leases_by_node ON leases (node_id);

ALTER TABLE subscription_usage
    ADD COLUMN reserved_micros INTEGER NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0);

-- What is set aside never exceeds the balance: the database refuses it,
-- whatever the code above it does.
CREATE TRIGGER wallets_reserved_within_balance BEFORE UPDATE ON wallets
WHEN NEW.reserved_micros > max(NEW.balance_micros, 0)
BEGIN SELECT RAISE(ABORT, 'a wallet''s reserved amount would exceed its balance'); END;
CREATE TRIGGER wallets_reserved_within_balance_insert BEFORE INSERT ON wallets
WHEN NEW.reserved_micros > max(NEW.balance_micros, 0)
BEGIN SELECT RAISE(ABORT, 'a wallet''s reserved amount would exceed its balance'); END;
