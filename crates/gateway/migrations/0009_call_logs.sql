-- The call log: one row per data-plane request, appended by the usage
-- writer in group commits. `seq` is the sync cursor: it only grows and is
-- never reused (AUTOINCREMENT), and a reader sees a window's rows all at once.
CREATE TABLE call_logs (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,    -- the request id, req_<ulid>
    at_us           INTEGER NOT NULL,        -- arrival, unix microseconds
    api             TEXT NOT NULL,
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,
    team_id         TEXT,
    consumer_id     TEXT,
    key_id          TEXT,
    key_prefix      TEXT,
    model           TEXT,
    provider_id     TEXT,
    provider_key    TEXT,
    status          INTEGER NOT NULL,
    reason          TEXT,
    upstream_status INTEGER,
    latency_us      INTEGER NOT NULL,
    upstream_us     INTEGER,
    ttft_us         INTEGER,
    tokens_in       INTEGER NOT NULL,
    tokens_out      INTEGER NOT NULL,
    cost_micros     INTEGER NOT NULL,
    currency        TEXT,
    client_ip       TEXT,
    user_agent      TEXT,
    error           TEXT
) STRICT;
CREATE INDEX call_logs_by_time ON call_logs (at_us);
CREATE INDEX call_logs_by_consumer ON call_logs (consumer_id, seq);
