-- The log explorer's saved filters: a name and a `LogFilter` (JSON) per
-- instance. Here, not in the instance's log cache, so that rebuilding or
-- deleting a cache keeps them; removing the instance removes them.
CREATE TABLE saved_log_filters (
    id           TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    filter       TEXT NOT NULL,
    -- A relative time range ("the last 24 h"), applied from the moment the
    -- filter is; the filter then holds no `from` / `to`.
    last_seconds INTEGER,
    created_at   TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX saved_log_filters_name_unique ON saved_log_filters (instance_id, lower(name));
