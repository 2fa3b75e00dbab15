//! Reads from the cache, never the network: the explorer's filtered pages
//! (newest first, keyset by seq), full-text search, one record, and the
//! figures of charts — from the rollups, with the raw records only for the
//! parts of a range shorter than a minute at its edges, so totals over any
//! range are exact.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rusqlite::params_from_iter;
use rusqlite::types::Value;
use tollgate_api::money::format_amount;
use tollgate_api::{CallLog, CostTotal};

use super::cache::{
    DIM_ALL, DIM_API, DIM_CONSUMER, DIM_MODEL, DIM_REASON, DIM_STATUS, RECORD_COLUMNS, RawRecord,
    Reader, measure_columns, measures_at,
};
use super::rollup::{Fact, Grain, Measures, Segment, decompose};

/// A filter with its strings turned into the cache's ids.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    /// Nothing can match (a value no record holds, an empty time range).
    pub empty: bool,
    pub seq_range: Option<(i64, i64)>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub consumer: Option<i64>,
    pub key: Option<i64>,
    pub api: Option<i64>,
    pub model: Option<i64>,
    pub reason: Option<i64>,
    pub status_class: Option<u16>,
    pub latency_min_us: Option<i64>,
    pub latency_max_us: Option<i64>,
    pub cost_min_micros: Option<i64>,
    pub cost_max_micros: Option<i64>,
    /// An FTS5 query.
    pub fts: Option<String>,
}

/// A checked filter, before its strings are looked up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checked {
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub consumer_id: Option<String>,
    pub key_id: Option<String>,
    pub api: Option<String>,
    pub model: Option<String>,
    pub reason: Option<String>,
    pub status_class: Option<u16>,
    pub latency_min_us: Option<i64>,
    pub latency_max_us: Option<i64>,
    pub cost_min_micros: Option<i64>,
    pub cost_max_micros: Option<i64>,
    pub fts: Option<String>,
}

/// The seqs of the records that arrived in `[from_us, to_us)` lie in the
/// answer (`None`: no record did).
pub(crate) fn seq_range(
    reader: &Reader,
    from_us: Option<i64>,
    to_us: Option<i64>,
) -> rusqlite::Result<Option<(i64, i64)>> {
    let low = from_us.map_or(i64::MIN, |f| f.div_euclid(60_000_000));
    let high = to_us.map_or(i64::MAX, |t| (t - 1).div_euclid(60_000_000));
    reader.conn.query_row(
        "SELECT min(min_seq), max(max_seq) FROM minute_seqs WHERE minute BETWEEN ?1 AND ?2",
        [low, high],
        |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
    )
}

pub(crate) fn resolve(reader: &Reader, c: &Checked) -> rusqlite::Result<Resolved> {
    let mut out = Resolved {
        from_us: c.from_us,
        to_us: c.to_us,
        status_class: c.status_class,
        latency_min_us: c.latency_min_us,
        latency_max_us: c.latency_max_us,
        cost_min_micros: c.cost_min_micros,
        cost_max_micros: c.cost_max_micros,
        fts: c
            .fts
            .as_deref()
            .map(|q| super::words::expand_prefixes(&reader.conn, q))
            .transpose()?,
        ..Resolved::default()
    };
    let mut lookup = |value: &Option<String>| -> rusqlite::Result<Option<i64>> {
        match value {
            None => Ok(None),
            Some(v) => match reader.id_of(v)? {
                Some(id) => Ok(Some(id)),
                None => {
                    out.empty = true;
                    Ok(None)
                }
            },
        }
    };
    let consumer = lookup(&c.consumer_id)?;
    let key = lookup(&c.key_id)?;
    let api = lookup(&c.api)?;
    let model = lookup(&c.model)?;
    let reason = lookup(&c.reason)?;
    (out.consumer, out.key, out.api, out.model, out.reason) = (consumer, key, api, model, reason);
    if c.from_us.is_some() || c.to_us.is_some() {
        match seq_range(reader, c.from_us, c.to_us)? {
            Some(range) => out.seq_range = Some(range),
            None => out.empty = true,
        }
    }
    Ok(out)
}

/// Words typed by the admin as an FTS5 query: each a quoted phrase (so no
/// character is syntax), all required; a trailing `*` matches a prefix.
pub(crate) fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .filter_map(|word| {
            let (word, prefix) = match word.strip_suffix('*') {
                Some(w) => (w, true),
                None => (word, false),
            };
            word.chars().any(char::is_alphanumeric).then(|| {
                format!(
                    "\"{}\"{}",
                    word.replace('"', "\"\""),
                    if prefix { "*" } else { "" }
                )
            })
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// How long one page may walk the log looking for matches.
const PAGE_BUDGET: Duration = Duration::from_millis(25);
/// The first window of seqs a page looks in; each next one is 4× wider, up
/// to `MAX_WINDOW` (one window's query stays within a few milliseconds
/// even where it reads every record of it).
const FIRST_WINDOW: i64 = 4_096;
const MAX_WINDOW: i64 = 262_144;

/// A page of records newest first, before the seq `before`; answers the
/// records and the cursor of the next page (absent at the end).
///
/// The page walks the log backwards in windows of seqs, each wider than
/// the last (a text search excepted), until it has `limit` records, reaches the start of the range,
/// or has worked for [`PAGE_BUDGET`]. A filter that few records match on a
/// column without an index (latency, cost, a rare word) would otherwise scan
/// tens of millions of rows in one call and freeze the explorer; this way it
/// answers the matches found so far and the cursor to go on from.
pub(crate) fn page(
    reader: &mut Reader,
    f: &Resolved,
    before: Option<i64>,
    limit: u32,
) -> rusqlite::Result<(Vec<CallLog>, Option<i64>)> {
    page_within(reader, f, before, limit, PAGE_BUDGET)
}

pub(crate) fn page_within(
    reader: &mut Reader,
    f: &Resolved,
    before: Option<i64>,
    limit: u32,
    budget: Duration,
) -> rusqlite::Result<(Vec<CallLog>, Option<i64>)> {
    if f.empty {
        return Ok((Vec::new(), None));
    }
    if f.fts.is_some() {
        // The full-text index yields its matches newest first and stops at
        // the limit: one query, whatever the number of records. (In windows
        // it would look up the words again for every window.)
        let raws = page_raw(reader, f, before, limit)?;
        let next = (raws.len() == limit as usize)
            .then(|| raws.last().map(RawRecord::seq))
            .flatten();
        return Ok((named(reader, raws)?, next));
    }
    let started = Instant::now();
    let (first, last): (Option<i64>, Option<i64>) = reader
        .conn
        // Not `min(seq), max(seq)`: SQLite reads the whole table for that pair.
        .query_row(
            "SELECT (SELECT seq FROM records ORDER BY seq LIMIT 1), \
                 (SELECT seq FROM records ORDER BY seq DESC LIMIT 1)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok((Vec::new(), None));
    };
    let (low, high) = f.seq_range.unwrap_or((first, last));
    let low = low.max(first);
    // Exclusive: the walk looks at seqs below `upper`.
    let mut upper = before
        .unwrap_or(i64::MAX)
        .min(high.min(last).saturating_add(1));
    let mut window = FIRST_WINDOW;
    let mut raws: Vec<RawRecord> = Vec::new();
    let mut next = None;
    while upper > low {
        let from = upper.saturating_sub(window).max(low);
        let within = Resolved {
            seq_range: Some((from, upper - 1)),
            ..f.clone()
        };
        let wanted = limit - raws.len() as u32;
        let found = page_raw(reader, &within, Some(upper), wanted)?;
        let full = found.len() == wanted as usize;
        raws.extend(found);
        if full {
            next = raws.last().map(RawRecord::seq).filter(|&seq| seq > low);
            break;
        }
        upper = from;
        window = (window * 4).min(MAX_WINDOW);
        if upper > low && started.elapsed() >= budget {
            next = Some(upper);
            break;
        }
    }
    Ok((named(reader, raws)?, next))
}

/// The records with their strings looked up.
fn named(reader: &mut Reader, raws: Vec<RawRecord>) -> rusqlite::Result<Vec<CallLog>> {
    let mut items = Vec::with_capacity(raws.len());
    for raw in raws {
        items.push(raw.into_log(|id| reader.name(id))?);
    }
    Ok(items)
}

pub(crate) fn page_raw(
    reader: &Reader,
    f: &Resolved,
    before: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<RawRecord>> {
    // With a text search, the full-text index leads (walked backwards by
    // rowid = seq) and the records are joined to it.
    let seq = if f.fts.is_some() {
        "records_fts.rowid"
    } else {
        "r.seq"
    };
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(q) = &f.fts {
        clauses.push("records_fts MATCH ?".into());
        values.push(Value::Text(q.clone()));
    }
    let mut clause = |sql: String, value: Option<i64>| {
        if let Some(v) = value {
            clauses.push(sql);
            values.push(Value::Integer(v));
        }
    };
    clause(format!("{seq} < ?"), before);
    clause(format!("{seq} >= ?"), f.seq_range.map(|r| r.0));
    clause(format!("{seq} <= ?"), f.seq_range.map(|r| r.1));
    clause("r.at_us >= ?".into(), f.from_us);
    clause("r.at_us < ?".into(), f.to_us);
    clause("r.consumer = ?".into(), f.consumer);
    clause("r.key_id = ?".into(), f.key);
    clause("r.api = ?".into(), f.api);
    clause("r.model = ?".into(), f.model);
    clause("r.reason = ?".into(), f.reason);
    clause("r.status / 100 = ?".into(), f.status_class.map(i64::from));
    clause("r.latency_us >= ?".into(), f.latency_min_us);
    clause("r.latency_us <= ?".into(), f.latency_max_us);
    clause("r.cost_micros >= ?".into(), f.cost_min_micros);
    clause("r.cost_micros <= ?".into(), f.cost_max_micros);
    values.push(Value::Integer(i64::from(limit)));
    let from = if f.fts.is_some() {
        "records_fts CROSS JOIN records r ON r.seq = records_fts.rowid"
    } else {
        "records r"
    };
    let filter = if clauses.is_empty() {
        "1".to_owned()
    } else {
        clauses.join(" AND ")
    };
    let sql =
        format!("SELECT {RECORD_COLUMNS} FROM {from} WHERE {filter} ORDER BY {seq} DESC LIMIT ?");
    let mut stmt = reader.conn.prepare_cached(&sql)?;
    stmt.query_map(params_from_iter(values), RawRecord::read)?
        .collect()
}

pub(crate) fn record(reader: &mut Reader, seq: i64) -> rusqlite::Result<Option<CallLog>> {
    let raw = {
        let mut stmt = reader.conn.prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records r WHERE r.seq = ?1"
        ))?;
        let mut rows = stmt.query_map([seq], RawRecord::read)?;
        rows.next().transpose()?
    };
    raw.map(|raw| raw.into_log(|id| reader.name(id)))
        .transpose()
}

/// The records' column holding a dimension's value (0 for none).
fn dim_column(dim: u8) -> &'static str {
    match dim {
        DIM_CONSUMER => "coalesce(consumer, 0)",
        DIM_MODEL => "coalesce(model, 0)",
        DIM_API => "api",
        DIM_STATUS => "status",
        DIM_REASON => "coalesce(reason, 0)",
        _ => "0",
    }
}

/// Measures keyed by (point, value, currency).
pub(crate) type Collected = BTreeMap<(i64, i64, i64), Measures>;

/// The measures of the records that arrived in `[from_us, to_us)`, per
/// value of `dim` (only `only`, when given) and currency; with `points`,
/// per bucket of that grain too (the first and last buckets hold only
/// what falls inside the range), else all under point 0.
pub(crate) fn collect(
    reader: &Reader,
    from_us: i64,
    to_us: i64,
    points: Option<Grain>,
    dim: u8,
    only: Option<i64>,
) -> rusqlite::Result<Collected> {
    let mut out = Collected::new();
    if from_us >= to_us {
        return Ok(out);
    }
    let piece = |a: i64, b: i64, point: i64, out: &mut Collected| {
        for seg in decompose(a, b) {
            add_segment(reader, seg, dim, only, Some(point), out)?;
        }
        Ok::<_, rusqlite::Error>(())
    };
    let Some(g) = points else {
        piece(from_us, to_us, 0, &mut out)?;
        return Ok(out);
    };
    let floor = |us: i64| us.div_euclid(g.micros()) * g.micros();
    let ceil = |us: i64| floor(us + g.micros() - 1);
    let (head_end, tail_start) = (ceil(from_us), floor(to_us));
    let point = |us: i64| us.div_euclid(g.micros()) * g.seconds();
    if head_end > tail_start {
        piece(from_us, to_us, point(from_us), &mut out)?;
        return Ok(out);
    }
    if from_us < head_end {
        piece(from_us, head_end, point(from_us), &mut out)?;
    }
    if head_end < tail_start {
        let whole = Segment::Buckets {
            grain: g,
            from_s: head_end / 1_000_000,
            to_s: tail_start / 1_000_000,
        };
        add_segment(reader, whole, dim, only, None, &mut out)?;
    }
    if tail_start < to_us {
        piece(tail_start, to_us, point(tail_start), &mut out)?;
    }
    Ok(out)
}

/// Adds one segment's measures to `out`, under `point` (or, for whole
/// buckets without one, under each bucket's start).
fn add_segment(
    reader: &Reader,
    seg: Segment,
    dim: u8,
    only: Option<i64>,
    point: Option<i64>,
    out: &mut Collected,
) -> rusqlite::Result<()> {
    match seg {
        Segment::Buckets {
            grain,
            from_s,
            to_s,
        } => {
            let mut values = vec![i64::from(dim), from_s, to_s];
            let table = grain.table();
            // One value's buckets through the (dim, value, bucket) index: the
            // planner may otherwise walk every value's rows of the range.
            let index = match only {
                Some(_) => format!("INDEXED BY {table}_value"),
                None => String::new(),
            };
            let mut sql = format!(
                "SELECT bucket, value, currency, {} FROM {table} {index} WHERE dim = ?1 \
                 AND bucket >= ?2 AND bucket < ?3",
                measure_columns(),
            );
            if let Some(v) = only {
                sql.push_str(" AND value = ?4");
                values.push(v);
            }
            let mut stmt = reader.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(values))?;
            while let Some(r) = rows.next()? {
                let bucket: i64 = r.get(0)?;
                let m = measures_at(r, 3)?;
                out.entry((point.unwrap_or(bucket), r.get(1)?, r.get(2)?))
                    .or_default()
                    .merge(&m);
            }
        }
        Segment::Raw { from_us, to_us } => {
            let Some((low, high)) = seq_range(reader, Some(from_us), Some(to_us))? else {
                return Ok(());
            };
            let column = dim_column(dim);
            let mut values = vec![low, high, from_us, to_us];
            let mut sql = format!(
                "SELECT {column}, coalesce(currency, 0), status, tokens_in, tokens_out, \
                 cost_micros, latency_us FROM records WHERE seq BETWEEN ?1 AND ?2 \
                 AND at_us >= ?3 AND at_us < ?4"
            );
            if let Some(v) = only {
                sql.push_str(&format!(" AND {column} = ?5"));
                values.push(v);
            }
            let mut stmt = reader.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(values))?;
            while let Some(r) = rows.next()? {
                let fact = Fact {
                    status: r.get(2)?,
                    tokens_in: r.get(3)?,
                    tokens_out: r.get(4)?,
                    cost_micros: r.get(5)?,
                    latency_us: r.get(6)?,
                };
                out.entry((point.unwrap_or(0), r.get(0)?, r.get(1)?))
                    .or_default()
                    .add(&fact);
            }
        }
    }
    Ok(())
}

/// Measures per (point, value), all currencies together, with the cost
/// per currency beside them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Folded {
    pub m: Measures,
    /// Micro-units per currency id.
    pub cost: BTreeMap<i64, i64>,
}

pub(crate) fn fold(collected: &Collected) -> BTreeMap<(i64, i64), Folded> {
    let mut out: BTreeMap<(i64, i64), Folded> = BTreeMap::new();
    for ((point, value, currency), m) in collected {
        let f = out.entry((*point, *value)).or_default();
        f.m.merge(m);
        if *currency != 0 {
            *f.cost.entry(*currency).or_default() += m.cost_micros;
        }
    }
    out
}

/// Cost per currency, named and formatted, in currency order.
pub(crate) fn costs(
    reader: &mut Reader,
    cost: &BTreeMap<i64, i64>,
) -> rusqlite::Result<Vec<CostTotal>> {
    let mut out = Vec::with_capacity(cost.len());
    for (currency, micros) in cost {
        out.push(CostTotal {
            currency: reader.name(*currency)?,
            amount: format_amount(*micros, 2),
        });
    }
    out.sort_by(|a, b| a.currency.cmp(&b.currency));
    Ok(out)
}

/// The value a dimension's id stands for (`None` for "none").
pub(crate) fn value_name(
    reader: &mut Reader,
    dim: u8,
    value: i64,
) -> rusqlite::Result<Option<String>> {
    match (dim, value) {
        (_, 0) => Ok(None),
        (DIM_STATUS, status) => Ok(Some(status.to_string())),
        (_, id) => reader.name(id).map(Some),
    }
}

/// The id of a dimension's value (`None` when no record holds it).
pub(crate) fn value_id(reader: &Reader, dim: u8, value: &str) -> rusqlite::Result<Option<i64>> {
    match dim {
        DIM_STATUS => Ok(value.parse::<i64>().ok()),
        DIM_ALL => Ok(Some(0)),
        _ => reader.id_of(value),
    }
}

/// The status each reason was answered with.
pub(crate) fn reason_statuses(reader: &Reader) -> rusqlite::Result<HashMap<i64, u16>> {
    let mut stmt = reader
        .conn
        .prepare_cached("SELECT reason, status FROM reason_status")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_words_become_quoted_phrases() {
        assert_eq!(fts_query("  "), None);
        assert_eq!(fts_query("- *"), None);
        assert_eq!(
            fts_query("insufficient-funds req_01J*"),
            Some("\"insufficient-funds\" \"req_01J\"*".into())
        );
        assert_eq!(
            fts_query("say \"hi\" OR NEAR("),
            Some("\"say\" \"\"\"hi\"\"\" \"OR\" \"NEAR(\"".into())
        );
    }
}
