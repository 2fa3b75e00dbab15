-- Ids (`req_…`, `con_…`, `key_…`, `tg_…`) become one word each in the
-- full-text index: searching an id, or its beginning with `*`, then looks up
-- one word instead of every record that holds `req` or `tg`. The index is
-- filled again from the records by this migration's hook (logs/cache.rs).
DROP TRIGGER records_fts_delete;
DROP TABLE records_fts;
CREATE VIRTUAL TABLE records_fts USING fts5 (
    text,
    content = '',
    contentless_delete = 1,
    tokenize = "unicode61 tokenchars '_'"
);
CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
    DELETE FROM records_fts WHERE rowid = old.seq;
END;
