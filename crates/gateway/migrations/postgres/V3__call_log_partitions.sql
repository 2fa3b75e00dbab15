-- The call log in time partitions: `call_log_blocks` is partitioned by the
-- end of each block's last call, a week a partition, so that retention
-- drops whole partitions (see store/postgres/partitions.rs, which makes
-- them). The DEFAULT partition takes the blocks of weeks without one yet —
-- the log moved here from the table before — until their partition is made.
ALTER TABLE call_log_blocks RENAME TO call_log_blocks_unpartitioned;
ALTER INDEX call_log_blocks_pkey RENAME TO call_log_blocks_unpartitioned_pkey;

CREATE TABLE call_log_blocks (
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL,
    records    integer NOT NULL,
    min_end_us bigint NOT NULL,
    max_end_us bigint NOT NULL,
    data       bytea NOT NULL,
    -- A key must hold the partition's column; `first_seq` alone is unique
    -- (log_state hands out seqs).
    PRIMARY KEY (first_seq, max_end_us)
) PARTITION BY RANGE (max_end_us);
CREATE TABLE call_log_blocks_default PARTITION OF call_log_blocks DEFAULT;

INSERT INTO call_log_blocks (first_seq, last_seq, records, min_end_us, max_end_us, data)
    SELECT first_seq, last_seq, records, min_end_us, max_end_us, data
    FROM call_log_blocks_unpartitioned;
DROP TABLE call_log_blocks_unpartitioned;
