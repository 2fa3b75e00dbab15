-- The distinct words of the full-text index (request ids excepted), so that
-- a search for the beginning of a word can look up the whole words it
-- stands for (logs/words.rs). Filled from the records by this migration's
-- hook.
CREATE TABLE search_words (
    word TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
