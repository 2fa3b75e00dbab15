-- The call-log cache of one instance (logs/<instance-id>.db): the gateway's
-- records, a full-text index, rollups for charts and the sync's cursor. Every
-- batch from the gateway is written in one transaction (records, index,
-- rollups and cursor together), so a kill at any point leaves it consistent.

-- Strings that repeat from record to record (consumer, model, API, reason,
-- path, user agent, …), stored once; records hold their ids.
CREATE TABLE strings (
    id    INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
) STRICT;

-- One row per gateway record; `seq` is the gateway's. Times are unix
-- microseconds, money micro-units; columns named after a string hold a
-- `strings.id`.
CREATE TABLE records (
    seq             INTEGER PRIMARY KEY,
    request_id      TEXT NOT NULL,
    at_us           INTEGER NOT NULL,
    api             INTEGER NOT NULL,
    method          INTEGER NOT NULL,
    path            INTEGER NOT NULL,
    team            INTEGER,
    consumer        INTEGER,
    key_id          INTEGER,
    key_prefix      INTEGER,
    model           INTEGER,
    provider        INTEGER,
    provider_key    INTEGER,
    status          INTEGER NOT NULL,
    reason          INTEGER,
    upstream_status INTEGER,
    latency_us      INTEGER NOT NULL,
    upstream_us     INTEGER,
    ttft_us         INTEGER,
    tokens_in       INTEGER NOT NULL,
    tokens_out      INTEGER NOT NULL,
    cost_micros     INTEGER NOT NULL,
    currency        INTEGER,
    client_ip       INTEGER,
    user_agent      INTEGER,
    error           TEXT,
    request_body    TEXT,
    response_body   TEXT
) STRICT;

-- The explorer's filters, newest first: each index holds (value, seq), so a
-- filtered page is a backwards walk of one index from the cursor. A time
-- range becomes a seq range through `minute_seqs`.
CREATE INDEX records_consumer ON records (consumer) WHERE consumer IS NOT NULL;
CREATE INDEX records_key ON records (key_id) WHERE key_id IS NOT NULL;
CREATE INDEX records_model ON records (model) WHERE model IS NOT NULL;
CREATE INDEX records_api ON records (api);
CREATE INDEX records_reason ON records (reason) WHERE reason IS NOT NULL;
CREATE INDEX records_status_class ON records (status / 100);

-- Full-text search over each record's words (ids, names, error, path, user
-- agent, captured bodies); contentless, rowid = seq.
CREATE VIRTUAL TABLE records_fts USING fts5 (
    text,
    content = '',
    contentless_delete = 1
);
CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
    DELETE FROM records_fts WHERE rowid = old.seq;
END;

-- The smallest and largest seq of the records that arrived in each minute
-- (unix time / 60): the seq range that holds a time range.
CREATE TABLE minute_seqs (
    minute  INTEGER PRIMARY KEY,
    min_seq INTEGER NOT NULL,
    max_seq INTEGER NOT NULL
) STRICT;

-- Rollups maintained at ingest, so that charts never read records. One row
-- per bucket (start, unix seconds) × dimension (0 all, 1 consumer, 2 model,
-- 3 api, 4 status, 5 reason) × value (a strings.id, the status code, or 0
-- for none) × currency (a strings.id, or 0). `hist` counts latencies in
-- fixed log-scale bins (see logs/rollup.rs), for percentiles.
CREATE TABLE rollup_minute (
    dim              INTEGER NOT NULL,
    bucket           INTEGER NOT NULL,
    value            INTEGER NOT NULL,
    currency         INTEGER NOT NULL,
    requests         INTEGER NOT NULL,
    errors           INTEGER NOT NULL,
    payment_required INTEGER NOT NULL,
    tokens_in        INTEGER NOT NULL,
    tokens_out       INTEGER NOT NULL,
    cost_micros      INTEGER NOT NULL,
    latency_sum_us   INTEGER NOT NULL,
    latency_max_us   INTEGER NOT NULL,
    hist             BLOB NOT NULL,
    PRIMARY KEY (dim, bucket, value, currency)
) STRICT, WITHOUT ROWID;
CREATE INDEX rollup_minute_value ON rollup_minute (dim, value, bucket);

CREATE TABLE rollup_hour (
    dim              INTEGER NOT NULL,
    bucket           INTEGER NOT NULL,
    value            INTEGER NOT NULL,
    currency         INTEGER NOT NULL,
    requests         INTEGER NOT NULL,
    errors           INTEGER NOT NULL,
    payment_required INTEGER NOT NULL,
    tokens_in        INTEGER NOT NULL,
    tokens_out       INTEGER NOT NULL,
    cost_micros      INTEGER NOT NULL,
    latency_sum_us   INTEGER NOT NULL,
    latency_max_us   INTEGER NOT NULL,
    hist             BLOB NOT NULL,
    PRIMARY KEY (dim, bucket, value, currency)
) STRICT, WITHOUT ROWID;
CREATE INDEX rollup_hour_value ON rollup_hour (dim, value, bucket);

CREATE TABLE rollup_day (
    dim              INTEGER NOT NULL,
    bucket           INTEGER NOT NULL,
    value            INTEGER NOT NULL,
    currency         INTEGER NOT NULL,
    requests         INTEGER NOT NULL,
    errors           INTEGER NOT NULL,
    payment_required INTEGER NOT NULL,
    tokens_in        INTEGER NOT NULL,
    tokens_out       INTEGER NOT NULL,
    cost_micros      INTEGER NOT NULL,
    latency_sum_us   INTEGER NOT NULL,
    latency_max_us   INTEGER NOT NULL,
    hist             BLOB NOT NULL,
    PRIMARY KEY (dim, bucket, value, currency)
) STRICT, WITHOUT ROWID;
CREATE INDEX rollup_day_value ON rollup_day (dim, value, bucket);

-- The status each refusal reason was answered with (the highest seen).
CREATE TABLE reason_status (
    reason INTEGER PRIMARY KEY,
    status INTEGER NOT NULL
) STRICT;

-- The sync's cursor and outcome (one row). `last_seq` moves only in the
-- transaction that stores the records up to it.
CREATE TABLE sync_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq        INTEGER NOT NULL DEFAULT 0,
    head_seq        INTEGER NOT NULL DEFAULT 0,
    records         INTEGER NOT NULL DEFAULT 0,
    gateway_id      TEXT,
    last_sync_at    INTEGER,
    last_attempt_at INTEGER,
    last_error_code TEXT,
    last_error      TEXT,
    retention_days  INTEGER
) STRICT;
INSERT INTO sync_state (id, retention_days) VALUES (1, 90);

-- What the sync met that it had to report (bad lines, duplicates, a log
-- that went back, …); the newest 1000 are kept.
CREATE TABLE sync_events (
    id      INTEGER PRIMARY KEY,
    at_us   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    seq     INTEGER
) STRICT;
