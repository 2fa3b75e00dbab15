-- Prevention: each instance's alert rules, and the alerts they raised. An
-- alert is keyed by what it is about and its episode (a period end, a card's
-- expiry month, the last top-up, a charge id…), so the same situation is
-- raised once, however often the rules run; a new episode raises anew.
CREATE TABLE alert_rules (
    instance_id TEXT PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    rules       TEXT NOT NULL
) STRICT;

CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY,
    instance_id   TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    rule          TEXT NOT NULL,
    severity      TEXT NOT NULL CHECK (severity IN ('warning', 'error')),
    title         TEXT NOT NULL,
    detail        TEXT NOT NULL,
    consumer_id   TEXT,
    target        TEXT,
    raised_at     TEXT NOT NULL,
    -- open | snoozed | resolved
    state         TEXT NOT NULL CHECK (state IN ('open', 'snoozed', 'resolved')),
    snoozed_until TEXT,
    resolved_at   TEXT,
    resolution    TEXT
) STRICT;
CREATE UNIQUE INDEX alerts_key_unique ON alerts (instance_id, key);
CREATE INDEX alerts_by_state ON alerts (instance_id, state, id);
