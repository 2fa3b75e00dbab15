-- The call log takes a row on every data-plane request, so a row is made
-- cheap to write: the numbers that filters, figures and retention use, the
-- names they group by coded as integers (`log_names`), and the rest of the
-- record as one compact blob (see store/sqlite/logs.rs; rows of the earlier
-- schema are kept as JSON, which the reader also takes). No index but the
-- primary key: rows are appended in the order calls end (`end_us`), so time
-- ranges are found by a binary search over `seq`. The request id needs no
-- unique index: a window's rows are written once, in one transaction,
-- rolled back as a whole when it fails. Seqs are given by the writer from
-- `log_state.last_seq` (kept in the window's transaction), so that none is
-- ever reused, even once every row was pruned, without AUTOINCREMENT's
-- bookkeeping on every row.
CREATE TABLE log_names (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
) STRICT;
INSERT OR IGNORE INTO log_names (name)
    SELECT api FROM call_logs
    UNION SELECT consumer_id FROM call_logs WHERE consumer_id IS NOT NULL
    UNION SELECT model FROM call_logs WHERE model IS NOT NULL
    UNION SELECT reason FROM call_logs WHERE reason IS NOT NULL
    UNION SELECT currency FROM call_logs WHERE currency IS NOT NULL;

CREATE TABLE log_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
) STRICT;
INSERT INTO log_state (id, last_seq)
    SELECT 1, max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'call_logs'), 0),
                  coalesce((SELECT max(seq) FROM call_logs), 0));

CREATE TABLE call_logs_new (
    seq         INTEGER PRIMARY KEY,
    end_us      INTEGER NOT NULL,   -- when the answer ended (arrival + latency)
    status      INTEGER NOT NULL,
    latency_us  INTEGER NOT NULL,
    tokens_in   INTEGER NOT NULL,
    tokens_out  INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL,
    api         INTEGER NOT NULL,   -- log_names
    consumer    INTEGER,            -- log_names
    model       INTEGER,            -- log_names
    reason      INTEGER,            -- log_names
    currency    INTEGER,            -- log_names
    record      BLOB NOT NULL
) STRICT;
INSERT INTO call_logs_new
SELECT seq, at_us + latency_us, status, latency_us, tokens_in, tokens_out, cost_micros,
    (SELECT id FROM log_names WHERE name = api),
    (SELECT id FROM log_names WHERE name = consumer_id),
    (SELECT id FROM log_names WHERE name = model),
    (SELECT id FROM log_names WHERE name = reason),
    (SELECT id FROM log_names WHERE name = currency),
    CAST(json_object('seq', 0, 'id', id,
        'at', strftime('%Y-%m-%dT%H:%M:%fZ', at_us / 1000000.0, 'unixepoch'),
        'api', api, 'method', method, 'path', path, 'team_id', team_id,
        'consumer_id', consumer_id, 'key_id', key_id, 'key_prefix', key_prefix,
        'model', model, 'provider_id', provider_id, 'provider_key', provider_key,
        'status', status, 'reason', reason, 'upstream_status', upstream_status,
        'latency_us', latency_us, 'upstream_us', upstream_us, 'ttft_us', ttft_us,
        'tokens_in', tokens_in, 'tokens_out', tokens_out,
        'cost', printf('%d.%06d', cost_micros / 1000000, abs(cost_micros % 1000000)),
        'currency', currency, 'client_ip', client_ip, 'user_agent', user_agent,
        'error', error, 'request_body', request_body, 'response_body', response_body) AS BLOB)
FROM call_logs ORDER BY seq;
DROP TABLE call_logs;
ALTER TABLE call_logs_new RENAME TO call_logs;
