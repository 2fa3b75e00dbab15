//! The distinct words of the full-text index, kept beside it (table
//! `search_words`), so that a search for the beginning of a word (`tg_1a2*`)
//! can look up the few whole words it stands for and search those.
//!
//! Why: FTS5 answers a prefix query by merging the whole lists of every
//! word that begins so before it returns the first match — every record of
//! a busy key for `tg_1a2*`, a quarter of a second at 10 million records.
//! The same search as `"tg_1a2b…" OR "tg_1a2c…"` reads each list lazily from
//! the newest record and stops at the page's limit.
//!
//! The words are FTS5's own: texts go through a scratch FTS5 table with the
//! same tokenizer, and its vocabulary is copied, so a word is split and
//! folded exactly as the index does. Request ids (`req_…`, one per record)
//! are left out; a prefix that could begin one is searched as it is. Words
//! of purged records stay: a word that no longer matches costs one lookup.

use std::collections::HashSet;

use rusqlite::{Connection, Transaction, params};

/// Distinct texts remembered per writer before the set is cleared.
const KNOWN_MAX: usize = 20_000;
/// A prefix standing for more words than this is searched as a prefix.
const EXPANSION_MAX: usize = 64;
/// The record ids' beginning (the gateway's request ids).
const REQUEST_ID_START: &str = "req_";

/// The scratch tables (in `temp`, per connection). The tokenizer must be the
/// index's (cache migration 2).
const SCRATCH: &str = "
    CREATE VIRTUAL TABLE IF NOT EXISTS temp.words_scratch USING fts5 (
        text,
        content = '',
        tokenize = \"unicode61 tokenchars '_'\"
    );
    CREATE VIRTUAL TABLE IF NOT EXISTS temp.words_scratch_terms
        USING fts5vocab(temp, words_scratch, row);
";

/// The texts of a batch whose words may be new, on their way into
/// `search_words`.
pub(crate) struct NewWords<'a> {
    known: &'a mut HashSet<String>,
    texts: Vec<String>,
}

impl<'a> NewWords<'a> {
    pub fn new(known: &'a mut HashSet<String>) -> Self {
        NewWords {
            known,
            texts: Vec::new(),
        }
    }

    /// A text that may hold new words (skipped when seen lately).
    pub fn add(&mut self, text: &str) {
        if text.is_empty() || self.known.contains(text) {
            return;
        }
        if self.known.len() >= KNOWN_MAX {
            self.known.clear();
        }
        self.known.insert(text.to_owned());
        self.texts.push(text.to_owned());
    }

    /// A text seen for the first time (a newly interned string).
    pub fn add_new(&mut self, text: &str) {
        self.texts.push(text.to_owned());
    }

    /// Stores the words of the texts added.
    pub fn store(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        store(tx, self.texts.iter().map(String::as_str))
    }

    /// After a failed transaction the texts it stored are gone.
    pub fn forget(known: &mut HashSet<String>) {
        known.clear();
    }
}

/// Puts the words of `texts` into `search_words` (request ids excepted).
pub(crate) fn store<'t>(
    conn: &Connection,
    texts: impl IntoIterator<Item = &'t str>,
) -> rusqlite::Result<()> {
    let mut texts = texts.into_iter().peekable();
    if texts.peek().is_none() {
        return Ok(());
    }
    conn.execute_batch(SCRATCH)?;
    {
        let mut insert =
            conn.prepare_cached("INSERT INTO temp.words_scratch (text) VALUES (?1)")?;
        for text in texts {
            insert.execute([text])?;
        }
    }
    conn.prepare_cached(
        "INSERT OR IGNORE INTO search_words (word) \
         SELECT term FROM temp.words_scratch_terms WHERE substr(term, 1, 4) <> ?1",
    )?
    .execute([REQUEST_ID_START])?;
    conn.prepare_cached("INSERT INTO temp.words_scratch (words_scratch) VALUES ('delete-all')")?
        .execute([])?;
    Ok(())
}

/// Fills `search_words` from a cache's records (cache migration 3).
pub(crate) fn fill(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut texts: Vec<String> = Vec::new();
    let flush = |texts: &mut Vec<String>| -> rusqlite::Result<()> {
        store(tx, texts.iter().map(String::as_str))?;
        texts.clear();
        Ok(())
    };
    for sql in [
        "SELECT value FROM strings",
        "SELECT DISTINCT CAST(status AS TEXT) FROM records",
        "SELECT DISTINCT error FROM records WHERE error IS NOT NULL",
        "SELECT request_body FROM records WHERE request_body IS NOT NULL",
        "SELECT response_body FROM records WHERE response_body IS NOT NULL",
        "SELECT request_id FROM records WHERE substr(request_id, 1, 4) <> 'req_'",
    ] {
        let mut stmt = tx.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            texts.push(row.get(0)?);
            if texts.len() >= 10_000 {
                flush(&mut texts)?;
            }
        }
    }
    flush(&mut texts)
}

/// Whether `prefix` (lower case) could begin a request id.
fn could_begin_request_id(prefix: &str) -> bool {
    prefix.starts_with(REQUEST_ID_START) || REQUEST_ID_START.starts_with(prefix)
}

/// The whole words `prefix` stands for, when they are few; `None` to search
/// it as a prefix.
fn expansion(conn: &Connection, prefix: &str) -> rusqlite::Result<Option<Vec<String>>> {
    let folded = prefix.to_ascii_lowercase();
    let plain = !folded.is_empty()
        && folded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plain || could_begin_request_id(&folded) {
        return Ok(None);
    }
    // The first string after every word that begins with `folded`: its last
    // byte plus one (ASCII, so still a string).
    let mut end = folded.clone().into_bytes();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let end = String::from_utf8(end).unwrap_or_default();
    let mut stmt = conn.prepare_cached(
        "SELECT word FROM search_words WHERE word >= ?1 AND word < ?2 ORDER BY word LIMIT ?3",
    )?;
    let words: Vec<String> = stmt
        .query_map(params![folded, end, EXPANSION_MAX as i64 + 1], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((!words.is_empty() && words.len() <= EXPANSION_MAX).then_some(words))
}

fn quoted(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
}

/// An FTS5 query from [`super::query::fts_query`] with its prefix terms
/// replaced by the whole words they stand for, where those are few.
pub(crate) fn expand_prefixes(conn: &Connection, fts: &str) -> rusqlite::Result<String> {
    let mut expanded = false;
    let mut terms: Vec<String> = Vec::new();
    // `fts_query` writes each term as a quoted phrase, `*` after a prefix,
    // separated by one space; a term holds no space.
    for term in fts.split(' ') {
        let word = term
            .strip_suffix("\"*")
            .and_then(|t| t.strip_prefix('"'))
            .filter(|w| !w.contains('"'));
        match word.map(|w| expansion(conn, w)).transpose()?.flatten() {
            Some(words) => {
                expanded = true;
                let any: Vec<String> = words.iter().map(|w| quoted(w)).collect();
                terms.push(format!("({})", any.join(" OR ")));
            }
            None => terms.push(term.to_owned()),
        }
    }
    Ok(if expanded {
        terms.join(" AND ")
    } else {
        fts.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE search_words (word TEXT PRIMARY KEY) WITHOUT ROWID;")
            .unwrap();
        conn
    }

    fn words(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT word FROM search_words ORDER BY word")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn words_are_split_and_folded_as_the_index_does() {
        let conn = cache();
        store(
            &conn,
            [
                "req_01J8ABC tg_1A2b GET /v1/chat/completions",
                "Café déjà-vu 402",
                "",
            ],
        )
        .unwrap();
        assert_eq!(
            words(&conn),
            [
                "402",
                "cafe",
                "chat",
                "completions",
                "deja",
                "get",
                "tg_1a2b",
                "v1",
                "vu"
            ]
        );
        // The scratch table was emptied: a second batch adds only its own.
        store(&conn, ["zebra"]).unwrap();
        assert_eq!(words(&conn).len(), 10);
    }

    #[test]
    fn a_prefix_of_few_words_becomes_those_words() {
        let conn = cache();
        store(&conn, ["tg_1a2b tg_1a2c tg_1a3 key_x req_01j8 request"]).unwrap();
        assert_eq!(
            expand_prefixes(&conn, "\"TG_1a2\"* \"402\"").unwrap(),
            "(\"tg_1a2b\" OR \"tg_1a2c\") AND \"402\""
        );
        // Words that are not prefixes, and prefixes of no word, stay.
        assert_eq!(
            expand_prefixes(&conn, "\"tg_1a2\" \"zz\"*").unwrap(),
            "\"tg_1a2\" \"zz\"*"
        );
        // A prefix that could begin a request id (left out of the words).
        for prefix in ["\"req_01\"*", "\"re\"*", "\"r\"*"] {
            assert_eq!(expand_prefixes(&conn, prefix).unwrap(), prefix);
        }
        // A prefix across words (a phrase) or with other characters.
        assert_eq!(
            expand_prefixes(&conn, "\"tg-1\"* \"é\"*").unwrap(),
            "\"tg-1\"* \"é\"*"
        );
    }

    #[test]
    fn a_prefix_of_many_words_stays_a_prefix() {
        let conn = cache();
        let many: Vec<String> = (0..=EXPANSION_MAX).map(|i| format!("w{i:03}")).collect();
        store(&conn, many.iter().map(String::as_str)).unwrap();
        assert_eq!(expand_prefixes(&conn, "\"w\"*").unwrap(), "\"w\"*");
        assert!(
            expand_prefixes(&conn, "\"w00\"*")
                .unwrap()
                .starts_with("(\"w000\" OR")
        );
    }
}
