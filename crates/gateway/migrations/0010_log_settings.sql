-- (`seq` of call_logs only grows; a replayed record may leave a gap, never a
-- repeat.) Captured bodies (off unless the log settings name the API; secrets
-- redacted before they are written) and the call log's settings.
ALTER TABLE call_logs ADD COLUMN request_body TEXT;
ALTER TABLE call_logs ADD COLUMN response_body TEXT;

CREATE TABLE log_settings (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    retention_days INTEGER NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
    max_records    INTEGER CHECK (max_records >= 1000),
    bodies         TEXT NOT NULL,          -- JSON array of BodyCapture
    updated_at     TEXT NOT NULL,
    version        INTEGER NOT NULL
) STRICT;
