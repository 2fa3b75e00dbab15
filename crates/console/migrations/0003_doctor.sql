-- The 402 doctor's fixes, as applied from this console: what was done, the
-- cause it was meant to fix, and what the re-check found. (The gateway
-- audits the write itself; this is the console's side of the story.)
CREATE TABLE doctor_fixes (
    id           INTEGER PRIMARY KEY,
    instance_id  TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    applied_at   TEXT NOT NULL,
    -- The FixAction as JSON: ids and amounts, never a secret.
    action       TEXT NOT NULL,
    description  TEXT NOT NULL,
    cause_before TEXT NOT NULL,
    -- resolved | not_resolved | failed
    outcome      TEXT NOT NULL CHECK (outcome IN ('resolved', 'not_resolved', 'failed')),
    cause_after  TEXT,
    error        TEXT
) STRICT;
CREATE INDEX doctor_fixes_by_instance ON doctor_fixes (instance_id, id);
