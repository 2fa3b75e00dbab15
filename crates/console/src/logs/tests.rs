//! The cache against a plain computation over the same records: ingest
//! (idempotent, duplicates and conflicts reported), the explorer's filters
//! and search, the figures of any range, purge.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tollgate_api::CallLog;
use tollgate_api::money::{format_amount, parse_amount};

use super::cache::{Incoming, LogCache};
use super::query::{self, Checked};
use super::rollup::Grain;
use super::*;

const MINUTE: i64 = 60_000_000;
/// 2026-01-05T00:00:00Z.
const T0: i64 = 1_767_571_200_000_000;

/// A deterministic mix of calls over three days: consumers, models,
/// statuses and reasons, two currencies, latencies over four magnitudes.
fn records(n: usize) -> Vec<CallLog> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut at = T0 + 17_345_678;
    (0..n)
        .map(|i| {
            at += (next() % (3 * MINUTE as u64 / 2)) as i64 / 10;
            let kind = next() % 10;
            let (status, reason) = match kind {
                0 => (401, Some("invalid-api-key")),
                1 => (402, Some("insufficient-funds")),
                2 => (404, Some("model-not-found")),
                3 => (502, Some("upstream-error")),
                _ => (200, None),
            };
            let consumer = (kind != 0).then(|| format!("cons_{}", next() % 7));
            let model = (kind != 0)
                .then(|| ["sim-small", "sim-large", "gpt-x"][(next() % 3) as usize].to_owned());
            let served = status == 200;
            let currency = served.then(|| if next() % 4 == 0 { "EUR" } else { "USD" }.to_owned());
            let cost = if served { (next() % 5_000) as i64 } else { 0 };
            CallLog {
                seq: i as i64 * 2 + 1,
                id: format!("req_{i:026}"),
                at: Utc.timestamp_micros(at).unwrap(),
                api: if next() % 5 == 0 {
                    "summarize".into()
                } else {
                    "chat".into()
                },
                method: "POST".into(),
                path: "/v1/chat/completions".into(),
                team_id: consumer.as_ref().map(|_| "team_1".to_owned()),
                key_id: consumer.as_ref().map(|c| format!("key_{c}")),
                key_prefix: consumer.as_ref().map(|_| "tg_abcd".to_owned()),
                consumer_id: consumer,
                model,
                provider_id: served.then(|| "prv_1".to_owned()),
                provider_key: served.then(|| "pkey_1 (…0031)".to_owned()),
                status,
                reason: reason.map(str::to_owned),
                upstream_status: served.then_some(200),
                latency_us: 10i64.pow((next() % 4) as u32 + 2) + (next() % 1000) as i64,
                upstream_us: served.then_some(50),
                ttft_us: None,
                tokens_in: if served { (next() % 100) as i64 } else { 0 },
                tokens_out: if served { (next() % 300) as i64 } else { 0 },
                cost: format_amount(cost, 2),
                currency,
                client_ip: Some(format!("10.0.0.{}", next() % 4)),
                user_agent: Some("test-agent/1.0".into()),
                error: (!served).then(|| format!("refused: {}", reason.unwrap_or("?"))),
                request_body: (i % 50 == 0)
                    .then(|| format!("{{\"prompt\": \"zebra number {i}\"}}")),
                response_body: None,
            }
        })
        .collect()
}

fn incoming(l: &CallLog) -> Incoming {
    Incoming {
        cost_micros: parse_amount(&l.cost).unwrap(),
        log: l.clone(),
    }
}

fn filled(n: usize) -> (tempfile::TempDir, LogCache, Vec<CallLog>) {
    let dir = tempfile::tempdir().unwrap();
    let cache = LogCache::open(&dir.path().join("logs/inst.db")).unwrap();
    let all = records(n);
    for chunk in all.chunks(700) {
        let batch: Vec<Incoming> = chunk.iter().map(incoming).collect();
        cache
            .ingest(&batch, all.last().unwrap().seq, &[], Utc::now())
            .unwrap();
    }
    (dir, cache, all)
}

fn in_range(l: &CallLog, from: i64, to: i64) -> bool {
    let at = l.at.timestamp_micros();
    at >= from && at < to
}

#[test]
fn ingest_is_idempotent_and_reports_duplicates_and_conflicts() {
    let (_dir, cache, all) = filled(3_000);
    let state = cache.state().unwrap();
    assert_eq!(
        (state.records, state.last_seq),
        (3_000, all.last().unwrap().seq)
    );

    // The same records again: nothing stored, each reported as a duplicate.
    let again: Vec<Incoming> = all[100..110].iter().map(incoming).collect();
    let outcome = cache.ingest(&again, 0, &[], Utc::now()).unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates.len()), (0, 10));
    // Changed content for a seq the cache has: the cached one is kept.
    let mut changed = incoming(&all[5]);
    changed.log.status = 500;
    let outcome = cache.ingest(&[changed], 0, &[], Utc::now()).unwrap();
    assert_eq!(outcome.conflicts, vec![all[5].seq]);
    // A new record below the cursor (a gap being filled): stored, reported.
    let mut late = incoming(&all[7]);
    late.log.seq = all[7].seq + 1;
    let outcome = cache.ingest(&[late], 0, &[], Utc::now()).unwrap();
    assert_eq!(
        (outcome.inserted, outcome.late.clone()),
        (1, vec![all[7].seq + 1])
    );
    assert_eq!(
        outcome.last_seq,
        all.last().unwrap().seq,
        "the cursor never goes back"
    );

    let state = cache.state().unwrap();
    assert_eq!(state.records, 3_001);
    let kinds: Vec<String> = cache.events(10).unwrap().into_iter().map(|e| e.1).collect();
    assert_eq!(kinds, ["out_of_order", "conflict", "duplicate"]);
    let mut reader = cache.reader();
    assert_eq!(
        query::record(&mut reader, all[5].seq).unwrap().unwrap(),
        all[5]
    );
    assert_eq!(
        query::record(&mut reader, all[2_999].seq).unwrap().unwrap(),
        all[2_999]
    );
    assert!(query::record(&mut reader, 2).unwrap().is_none());
    drop(reader);
    assert_eq!(cache.integrity_check().unwrap(), "ok");
}

#[test]
fn pages_filter_and_search_like_a_plain_scan() {
    let (_dir, cache, all) = filled(4_000);
    let from = all[1_000].at.timestamp_micros() + 1;
    let to = all[3_000].at.timestamp_micros();
    type Keep = Box<dyn Fn(&CallLog) -> bool>;
    let filters: Vec<(Checked, Keep)> = vec![
        (Checked::default(), Box::new(|_| true)),
        (
            Checked {
                from_us: Some(from),
                to_us: Some(to),
                ..Checked::default()
            },
            Box::new(move |l| in_range(l, from, to)),
        ),
        (
            Checked {
                consumer_id: Some("cons_3".into()),
                status_class: Some(2),
                from_us: Some(from),
                ..Checked::default()
            },
            Box::new(move |l| {
                l.consumer_id.as_deref() == Some("cons_3")
                    && l.status / 100 == 2
                    && l.at.timestamp_micros() >= from
            }),
        ),
        (
            Checked {
                reason: Some("insufficient-funds".into()),
                model: Some("gpt-x".into()),
                ..Checked::default()
            },
            Box::new(|l| {
                l.reason.as_deref() == Some("insufficient-funds")
                    && l.model.as_deref() == Some("gpt-x")
            }),
        ),
        (
            Checked {
                api: Some("summarize".into()),
                key_id: Some("key_cons_1".into()),
                latency_min_us: Some(1_000),
                latency_max_us: Some(10_999),
                cost_min_micros: Some(1),
                ..Checked::default()
            },
            Box::new(|l| {
                l.api == "summarize"
                    && l.key_id.as_deref() == Some("key_cons_1")
                    && (1_000..=10_999).contains(&l.latency_us)
                    && parse_amount(&l.cost).unwrap() >= 1
            }),
        ),
        (
            Checked {
                fts: query::fts_query("zebra"),
                ..Checked::default()
            },
            Box::new(|l| l.request_body.is_some()),
        ),
        (
            Checked {
                fts: query::fts_query("refused: model-not*"),
                to_us: Some(to),
                ..Checked::default()
            },
            Box::new(move |l| {
                l.reason.as_deref() == Some("model-not-found") && l.at.timestamp_micros() < to
            }),
        ),
        (
            Checked {
                consumer_id: Some("nobody".into()),
                ..Checked::default()
            },
            Box::new(|_| false),
        ),
    ];
    // With no time budget a page looks in one window of seqs and answers
    // what it found there: the pages, put together, must be the same.
    let mut short_pages = 0;
    for budget in [Duration::from_secs(60), Duration::ZERO] {
        for (i, (checked, keep)) in filters.iter().enumerate() {
            let want: Vec<CallLog> = all.iter().rev().filter(|l| keep(l)).cloned().collect();
            let mut reader = cache.reader();
            let resolved = query::resolve(&reader, checked).unwrap();
            let mut got = Vec::new();
            let mut before = None;
            loop {
                let (items, next) =
                    query::page_within(&mut reader, &resolved, before, 97, budget).unwrap();
                if items.len() < 97 && next.is_some() {
                    short_pages += 1;
                }
                got.extend(items);
                match next {
                    Some(n) => before = Some(n),
                    None => break,
                }
            }
            assert!(!want.is_empty() || i == 7, "filter {i} matches something");
            assert_eq!(got.len(), want.len(), "filter {i}, budget {budget:?}");
            assert!(got == want, "filter {i}, budget {budget:?}");
        }
    }
    assert!(short_pages > 0, "a page without budget stopped early");
}

#[test]
fn a_page_stops_on_its_budget_and_says_where_to_go_on() {
    let (_dir, cache, all) = filled(20_000);
    // Matches no record, on a column without an index: every record is looked at.
    let nothing = Checked {
        latency_min_us: Some(i64::MAX),
        ..Checked::default()
    };
    let mut reader = cache.reader();
    let resolved = query::resolve(&reader, &nothing).unwrap();
    let (items, next) =
        query::page_within(&mut reader, &resolved, None, 100, Duration::ZERO).unwrap();
    assert!(items.is_empty());
    let newest = all.last().unwrap().seq;
    let next = next.expect("more of the log to look at");
    assert!(next < newest && next > 1, "went on from {next}");
    // Given time, the walk reaches the start of the log and says so.
    let (items, next) =
        query::page_within(&mut reader, &resolved, None, 100, Duration::from_secs(60)).unwrap();
    assert!(items.is_empty());
    assert_eq!(next, None);
}

#[test]
fn the_figures_of_any_range_equal_a_plain_sum() {
    let (_dir, cache, all) = filled(6_000);
    let first = all[0].at.timestamp_micros();
    let last = all.last().unwrap().at.timestamp_micros();
    let ranges = [
        (first - MINUTE, last + MINUTE),
        (T0, T0 + 3 * 86_400_000_000),
        (first + 12_345_678, last - 98_765_432),
        (T0 + 3_600_000_000 + 30_000_000, T0 + 30 * 3_600_000_000 + 7),
        (first + 1, first + 50_000_000),
    ];
    for (from, to) in ranges {
        let inside: Vec<&CallLog> = all.iter().filter(|l| in_range(l, from, to)).collect();
        assert!(!inside.is_empty());
        let stats = super::stats(&cache, from, to, Grain::Hour).unwrap();
        assert_eq!(stats.requests, inside.len() as i64);
        assert_eq!(
            stats.errors,
            inside.iter().filter(|l| l.status >= 400).count() as i64
        );
        assert_eq!(
            stats.tokens_in,
            inside.iter().map(|l| l.tokens_in).sum::<i64>()
        );
        assert_eq!(
            stats.tokens_out,
            inside.iter().map(|l| l.tokens_out).sum::<i64>()
        );
        let mut cost: BTreeMap<String, i64> = BTreeMap::new();
        for l in &inside {
            if let Some(c) = &l.currency {
                *cost.entry(c.clone()).or_default() += parse_amount(&l.cost).unwrap();
            }
        }
        let want: Vec<(String, String)> = cost
            .into_iter()
            .map(|(c, m)| (c, format_amount(m, 2)))
            .collect();
        let got: Vec<(String, String)> = stats
            .cost
            .iter()
            .map(|c| (c.currency.clone(), c.amount.clone()))
            .collect();
        assert_eq!(got, want);
        // Per hour, the first and last cut at the range.
        let mut hours: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
        for l in &inside {
            let h = hours
                .entry(Grain::Hour.bucket_of(l.at.timestamp_micros()))
                .or_default();
            h.0 += 1;
            h.1 += i64::from(l.status >= 400);
            h.2 += i64::from(l.status == 402);
        }
        let series: Vec<(i64, (i64, i64, i64))> = stats
            .series
            .iter()
            .map(|p| (p.at.timestamp(), (p.requests, p.errors, p.payment_required)))
            .collect();
        assert_eq!(series, hours.into_iter().collect::<Vec<_>>());
        let mut reasons: BTreeMap<&str, i64> = BTreeMap::new();
        for l in &inside {
            if let Some(r) = &l.reason {
                *reasons.entry(r).or_default() += 1;
            }
        }
        let got: BTreeMap<&str, i64> = stats
            .by_reason
            .iter()
            .map(|r| (r.reason.as_str(), r.count))
            .collect();
        assert_eq!(got, reasons);
        assert!(stats.by_reason.iter().all(|r| r.status >= 400));
        // Percentiles within 1/16 of the exact nearest rank.
        let mut latencies: Vec<i64> = inside.iter().map(|l| l.latency_us).collect();
        latencies.sort_unstable();
        for (p, got) in [
            (0.5, stats.latency_p50_us),
            (0.95, stats.latency_p95_us),
            (0.99, stats.latency_p99_us),
        ] {
            let n = latencies.len() as f64;
            let exact = latencies[((n * p).ceil() as usize).clamp(1, latencies.len()) - 1];
            assert!((got - exact).abs() * 16 <= exact, "p{p}: {got} vs {exact}");
        }
        // Breakdowns: the consumers' requests add up to the total.
        let by_consumer = super::breakdown(&cache, from, to, cache::DIM_CONSUMER, 500).unwrap();
        assert_eq!(
            by_consumer.iter().map(|r| r.requests).sum::<i64>(),
            stats.requests
        );
        let anonymous = by_consumer
            .iter()
            .find(|r| r.value.is_none())
            .map_or(0, |r| r.requests);
        assert_eq!(
            anonymous,
            inside.iter().filter(|l| l.consumer_id.is_none()).count() as i64
        );
        // One consumer's series sums to its breakdown row.
        let row = &by_consumer.iter().find(|r| r.value.is_some()).unwrap();
        let one = super::charts::series(
            &cache,
            from,
            to,
            Grain::Minute,
            Some((cache::DIM_CONSUMER, row.value.clone().unwrap())),
        )
        .unwrap();
        assert_eq!(one.iter().map(|p| p.requests).sum::<i64>(), row.requests);
        assert_eq!(
            one.iter().map(|p| p.tokens_out).sum::<i64>(),
            row.tokens_out
        );
        // Refusals by reason over time.
        let by_reason =
            super::breakdown_series(&cache, from, to, Grain::Day, cache::DIM_REASON, 3).unwrap();
        assert!(by_reason.len() <= 3);
        for s in &by_reason {
            assert_eq!(s.points.iter().map(|p| p.requests).sum::<i64>(), s.requests);
        }
    }
}

#[test]
fn purge_deletes_old_records_with_their_index_rows_and_rollups() {
    let (_dir, cache, all) = filled(3_000);
    let cutoff = all[1_500].at.timestamp_micros();
    let old = all
        .iter()
        .filter(|l| l.at.timestamp_micros() < cutoff)
        .count() as u64;
    assert_eq!(cache.purge(cutoff, 400).unwrap(), old);
    let state = cache.state().unwrap();
    assert_eq!(state.records as u64, 3_000 - old);
    let reader = cache.reader();
    let (n, fts): (i64, i64) = reader
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM records_fts WHERE records_fts MATCH 'POST')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, fts), (state.records, state.records));
    let oldest_rollup: i64 = reader
        .conn
        .query_row("SELECT min(bucket) FROM rollup_minute", [], |r| r.get(0))
        .unwrap();
    assert!(oldest_rollup + 60 > cutoff / 1_000_000);
    drop(reader);
    cache.vacuum().unwrap();
    assert_eq!(cache.integrity_check().unwrap(), "ok");
}

/// The query plan of a page with this filter (the shape `page_raw` builds).
fn plan(cache: &LogCache, sql_filter: &str, from: &str) -> Vec<String> {
    let reader = cache.reader();
    reader
        .conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT {} FROM {from} WHERE {sql_filter} ORDER BY {} DESC LIMIT 10",
            cache::RECORD_COLUMNS,
            if from.starts_with("records_fts") {
                "records_fts.rowid"
            } else {
                "r.seq"
            }
        ))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn pages_walk_an_index_backwards_without_sorting() {
    let (_dir, cache, _) = filled(2_000);
    cache.optimize().unwrap();
    // The queries `page_raw` builds, run once to be sure they are valid.
    for resolved in [
        query::Resolved {
            fts: query::fts_query("chat"),
            consumer: Some(1),
            seq_range: Some((1, 1_000)),
            ..query::Resolved::default()
        },
        query::Resolved {
            status_class: Some(4),
            ..query::Resolved::default()
        },
    ] {
        query::page_raw(&cache.reader(), &resolved, Some(500), 10).unwrap();
    }
    let fts = "records_fts CROSS JOIN records r ON r.seq = records_fts.rowid";
    let cases = [
        (
            "records_fts MATCH 'chat' AND records_fts.rowid < 500 AND r.consumer = 1",
            fts,
            "records_fts",
        ),
        (
            "r.status / 100 = 4 AND r.seq < 900",
            "records r",
            "records_status_class",
        ),
        (
            "r.consumer = 2 AND r.seq >= 100 AND r.seq <= 3000 AND r.at_us >= 0",
            "records r",
            "records_consumer",
        ),
        ("r.reason = 3", "records r", "records_reason"),
        (
            "r.seq >= 100 AND r.seq <= 3000 AND r.at_us < 99",
            "records r",
            "PRIMARY KEY",
        ),
    ];
    for (filter, from, index) in cases {
        let plan = plan(&cache, filter, from);
        assert!(
            !plan.iter().any(|p| p.contains("TEMP B-TREE")),
            "{filter}: {plan:?}"
        );
        assert!(plan.iter().any(|p| p.contains(index)), "{filter}: {plan:?}");
    }
}

#[test]
fn a_cache_from_before_whole_id_words_is_indexed_again_when_opened() {
    let (dir, cache, all) = filled(1_500);
    let path = cache.path.clone();
    drop(cache);
    // The cache as migration 1 left it: ids split at `_` in the index.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER records_fts_delete; DROP TABLE records_fts;
         CREATE VIRTUAL TABLE records_fts USING fts5 (text, content = '', contentless_delete = 1);
         CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
             DELETE FROM records_fts WHERE rowid = old.seq; END;
         DROP TABLE search_words;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let cache = LogCache::open(&path).unwrap();
    let search = |text: &str| -> Vec<CallLog> {
        let checked = Checked {
            fts: query::fts_query(text),
            ..Checked::default()
        };
        let mut reader = cache.reader();
        let resolved = query::resolve(&reader, &checked).unwrap();
        query::page(&mut reader, &resolved, None, 1_000).unwrap().0
    };
    // An id is one word: found whole, and by its beginning.
    let one = &all[777];
    assert_eq!(search(&one.id), vec![one.clone()]);
    let prefix = &one.id[..one.id.len() - 2];
    let want: Vec<CallLog> = all
        .iter()
        .rev()
        .filter(|l| l.id.starts_with(prefix))
        .cloned()
        .collect();
    assert!(want.len() > 1);
    assert_eq!(search(&format!("{prefix}*")), want);
    // `req` alone is no longer a word of every record.
    assert!(search("req").is_empty());
    // Every record is in the new index, once.
    let indexed: i64 = cache
        .reader()
        .conn
        .query_row("SELECT count(*) FROM records_fts_docsize", [], |r| r.get(0))
        .unwrap();
    assert_eq!(indexed, all.len() as i64);
    // Migration 3 found the words, so prefix searches are expanded.
    assert_prefix_searches_match_the_index(&cache);
    drop(dir);
}

/// Every prefix search answers what FTS5's own prefix query answers, and
/// the prefixes of few words were expanded into those words.
fn assert_prefix_searches_match_the_index(cache: &LogCache) {
    let mut reader = cache.reader();
    let mut expanded = 0;
    for typed in [
        "tg_ab*",
        "TG_ABCD*",
        "key_cons_*",
        "cons_1*",
        "40*",
        "zeb*",
        "refus*",
        "sim*",
        "team*",
        "10*",
        "summ*",
        "req_0000000000000000000000001*",
        "re*",
        "nothing*",
        "chat tg_a*",
        "402 cons_*",
    ] {
        let fts = query::fts_query(typed).unwrap();
        let resolved = query::resolve(
            &reader,
            &Checked {
                fts: Some(fts.clone()),
                ..Checked::default()
            },
        )
        .unwrap();
        if resolved.fts.as_deref() != Some(fts.as_str()) {
            expanded += 1;
        }
        let found: Vec<i64> = query::page(&mut reader, &resolved, None, 100_000)
            .unwrap()
            .0
            .iter()
            .map(|l| l.seq)
            .collect();
        let mut stmt = reader
            .conn
            .prepare("SELECT rowid FROM records_fts WHERE records_fts MATCH ?1 ORDER BY rowid DESC")
            .unwrap();
        let want: Vec<i64> = stmt
            .query_map([&fts], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(found, want, "{typed}: searched as {:?}", resolved.fts);
    }
    assert!(expanded >= 10, "{expanded} prefix searches expanded");
}

#[test]
fn a_prefix_search_answers_what_the_index_answers() {
    let (_dir, cache, _all) = filled(3_000);
    assert_prefix_searches_match_the_index(&cache);
}
