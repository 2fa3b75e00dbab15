-- Rate limits held across nodes: one bucket per plan limit and consumer
-- (`key`), kept as the time it is full again, in microseconds since the
-- epoch by the database's clock (GCRA; any time past means full). Nodes take
-- units from it a part at a time and give back what they did not use.
CREATE TABLE rate_allowances (
    key        TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
    full_at_us BIGINT NOT NULL
);
