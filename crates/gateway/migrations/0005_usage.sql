-- Included credits used per subscription period, in micro-units of the plan's
-- currency; updated with each settled call, in the same transaction as its
-- wallet entry (if any).
CREATE TABLE subscription_usage (
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    period_start    TEXT NOT NULL,
    used_micros     INTEGER NOT NULL CHECK (used_micros >= 0),
    calls           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subscription_id, period_start)
) STRICT;
