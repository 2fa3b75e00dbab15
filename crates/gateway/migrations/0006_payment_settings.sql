-- The gateway's payment settings: one row. Credentials are sealed with the
-- encryption key, which is never stored here.
CREATE TABLE payment_settings (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    processor           TEXT NOT NULL,
    credentials_sealed  BLOB,
    credentials_last4   TEXT,
    accepted_currencies TEXT NOT NULL,
    grace_days          INTEGER NOT NULL CHECK (grace_days BETWEEN 0 AND 90),
    updated_at          TEXT,
    version             INTEGER NOT NULL
) STRICT;
