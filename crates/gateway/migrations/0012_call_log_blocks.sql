-- The call log in blocks: each usage-writer window appends its records as
-- one row (up to 512 records, consecutive seqs, `last_seq - first_seq` below
-- 512), so a record costs a share of one insert instead of an insert of its
-- own — the log's cost on the request path was a third of a refused call's.
-- Readers decode the blocks a seq range overlaps and filter in memory (the
-- rows had no index but the key either). `min_end_us` / `max_end_us` bound
-- when the block's calls ended (arrival + latency): blocks are appended in
-- the order calls end, give or take a few seconds, so a time range is found
-- by a binary search over `first_seq`. The rows of `call_logs` are moved
-- into blocks by this migration's hook (store/sqlite/logs.rs), which then
-- drops that table and its name dictionary.
CREATE TABLE call_log_blocks (
    first_seq  INTEGER PRIMARY KEY,
    last_seq   INTEGER NOT NULL,
    records    INTEGER NOT NULL,
    min_end_us INTEGER NOT NULL,
    max_end_us INTEGER NOT NULL,
    data       BLOB NOT NULL
) STRICT;
