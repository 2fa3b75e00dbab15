//! Benchmarks of the call-log cache (issue 5's figures; `scripts/bench-log-cache.sh`
//! runs them, BENCHMARKS.md records them):
//!
//! - `ingest N DIR`: records/s into the cache — pre-parsed records, and the
//!   whole sync path from NDJSON lines (`check_line` + `LogCache::ingest`) —
//!   next to a raw SQLite bulk insert of the same rows into a table with the
//!   same columns and nothing else (no dictionary, index, full-text index or
//!   rollup): the floor. Same batch size as a sync (2,000), same pragmas.
//! - `build N FILE`: fills a cache to N records (resumes where it stopped).
//! - `query FILE RUNS`: p50 / p95 / max of a filtered explorer page, a
//!   full-text search and a 30-day chart, each from the same public calls the
//!   console's commands make.
//!
//! The records are synthetic — what a busy gateway logs: 2,000 consumers
//! (a few busy, most quiet), 12 models, 20 prompt APIs, 90 % served and the
//! rest refused (402s by reason, 401, 403, 429) or failed upstream —, spread
//! evenly over the 35 days before `END`. They are generated from their seq,
//! so every run and every build holds the same rows.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, params};
use tollgate_api::CallLog;
use tollgate_api::money::format_amount;
use tollgate_console::logs::cache::{Incoming, LogCache};
use tollgate_console::logs::sync::check_line;
use tollgate_console::logs::{LogFilter, LogSeriesQuery};

/// The time a built cache's records spread over.
const SPAN_US: i64 = 35 * 86_400_000_000;
/// A sync's batch (`SyncOptions::default().batch_size`), unless
/// `BENCH_BATCH` says otherwise.
fn batch_size() -> usize {
    std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(tollgate_console::logs::SyncOptions::default().batch_size)
}
const CONSUMERS: u64 = 2_000;
const MODELS: [&str; 12] = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet-4",
    "claude-haiku-3-5",
    "gemini-2.0-flash",
    "llama-3.3-70b",
    "mistral-large",
    "deepseek-chat",
    "qwen-2.5-72b",
    "o3-mini",
    "command-r-plus",
    "phi-4",
];
const REASONS_402: [&str; 4] = [
    "insufficient-funds",
    "subscription-expired",
    "subscription-past-due",
    "payment-method-invalid",
];
const AGENTS: [&str; 6] = [
    "OpenAI/Python 1.54.0",
    "OpenAI/JS 4.73.0",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "langchain/0.3.7",
    "Go-http-client/2.0",
];

fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
}

/// SplitMix64: the record's random numbers, from its seq alone.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// In [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn consumer_id(c: u64) -> String {
    format!("con_{:026X}", c.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 2)
}

/// Record `seq` of a log of `total` records over the `span_us` before `END`.
fn record(seq: i64, total: i64, span_us: i64) -> Incoming {
    let mut d = Dice(seq as u64);
    let at = end() - chrono::Duration::microseconds(span_us)
        + chrono::Duration::microseconds(span_us / total * seq);
    // A few busy consumers, most quiet.
    let c = ((d.unit().powi(3)) * CONSUMERS as f64) as u64;
    let consumer = consumer_id(c);
    let key = d.below(2);
    let roll = d.unit();
    let api = match d.below(100) {
        0..85 => "chat".to_owned(),
        85..90 => "models".to_owned(),
        90..93 => "billing-status".to_owned(),
        _ => format!("prompt-{}", d.below(20)),
    };
    let model = MODELS[((d.unit().powi(2)) * MODELS.len() as f64) as usize];
    let (status, reason, error): (u16, Option<&str>, Option<String>) = match roll {
        r if r < 0.90 => (200, None, None),
        r if r < 0.93 => {
            let reason = REASONS_402[d.below(4) as usize];
            (
                402,
                Some(reason),
                Some(format!("payment required: {reason}")),
            )
        }
        r if r < 0.95 => (
            401,
            Some("invalid-api-key"),
            Some("the API key is not valid".into()),
        ),
        r if r < 0.96 => (
            403,
            Some("not-subscribed"),
            Some("no subscription covers this API".into()),
        ),
        r if r < 0.985 => (
            429,
            Some("rate-limited"),
            Some("requests per minute exhausted".into()),
        ),
        _ => (
            502,
            Some("upstream-failed"),
            Some("the provider answered 503 Service Unavailable".into()),
        ),
    };
    let served = status == 200 || status == 502;
    let (tokens_in, tokens_out) = if status == 200 {
        (50 + d.below(4_000) as i64, 10 + d.below(2_000) as i64)
    } else {
        (0, 0)
    };
    let latency_us = if served {
        (150_000.0 * (1.0 + 60.0 * d.unit().powi(4))) as i64
    } else {
        150 + d.below(400) as i64
    };
    let cost_micros = tokens_in * 3 + tokens_out * 12;
    let usd = !c.is_multiple_of(10);
    let log = CallLog {
        seq,
        id: format!(
            "req_{}",
            ulid::Ulid::from_parts(at.timestamp_millis() as u64, u128::from(d.next()))
                .to_string()
                .to_lowercase()
        ),
        at,
        api: api.clone(),
        method: if api == "models" { "GET" } else { "POST" }.into(),
        path: match api.as_str() {
            "chat" => "/v1/chat/completions".into(),
            "models" => "/v1/models".into(),
            "billing-status" => "/v1/billing/status".into(),
            slug => format!("/v1/prompt/{slug}"),
        },
        team_id: (status != 401).then(|| format!("team_{:04}", c / 10)),
        consumer_id: (status != 401).then(|| consumer.clone()),
        key_id: (status != 401).then(|| format!("key_{c:04}_{key}")),
        key_prefix: (status != 401).then(|| format!("tg_{:04x}{key}", c)),
        model: Some(model.into()),
        provider_id: served.then(|| format!("prov_{}", d.below(4))),
        provider_key: served.then(|| {
            let k = d.below(16);
            format!("pkey_{k:02} (…{:04x})", k.wrapping_mul(0x9E37) & 0xffff)
        }),
        status,
        reason: reason.map(str::to_owned),
        upstream_status: served.then_some(if status == 502 { 503 } else { 200 }),
        latency_us,
        upstream_us: served.then_some(latency_us - 300),
        ttft_us: (served && d.below(3) == 0).then_some(latency_us / 5),
        tokens_in,
        tokens_out,
        cost: format_amount(cost_micros, 2),
        currency: Some(if usd { "USD" } else { "EUR" }.into()),
        // A few addresses per consumer.
        client_ip: Some(format!("10.{}.{}.{}", c % 200, c / 200, d.below(4))),
        user_agent: Some(AGENTS[(c % 6) as usize].into()),
        error,
        request_body: None,
        response_body: None,
    };
    Incoming { log, cost_micros }
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// The floor: the same rows into one plain table, one transaction per batch.
fn raw_insert(path: &Path, rows: &[Incoming]) -> rusqlite::Result<Duration> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    conn.execute_batch(
        "CREATE TABLE records (seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL, \
         at_us INTEGER NOT NULL, api TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, \
         team TEXT, consumer TEXT, key_id TEXT, key_prefix TEXT, model TEXT, provider TEXT, \
         provider_key TEXT, status INTEGER NOT NULL, reason TEXT, upstream_status INTEGER, \
         latency_us INTEGER NOT NULL, upstream_us INTEGER, ttft_us INTEGER, \
         tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, cost_micros INTEGER NOT NULL, \
         currency TEXT, client_ip TEXT, user_agent TEXT, error TEXT, request_body TEXT, \
         response_body TEXT) STRICT",
    )?;
    let started = Instant::now();
    for batch in rows.chunks(batch_size()) {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                 ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
            )?;
            for Incoming {
                log: l,
                cost_micros,
            } in batch
            {
                insert.execute(params![
                    l.seq,
                    l.id,
                    l.at.timestamp_micros(),
                    l.api,
                    l.method,
                    l.path,
                    l.team_id,
                    l.consumer_id,
                    l.key_id,
                    l.key_prefix,
                    l.model,
                    l.provider_id,
                    l.provider_key,
                    l.status,
                    l.reason,
                    l.upstream_status,
                    l.latency_us,
                    l.upstream_us,
                    l.ttft_us,
                    l.tokens_in,
                    l.tokens_out,
                    cost_micros,
                    l.currency,
                    l.client_ip,
                    l.user_agent,
                    l.error,
                    l.request_body,
                    l.response_body,
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed())
}

fn open(path: &Path) -> LogCache {
    LogCache::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

fn ingest_all(cache: &LogCache, rows: &[Incoming]) -> Duration {
    let started = Instant::now();
    for batch in rows.chunks(batch_size()) {
        let head = batch.last().map_or(0, |i| i.log.seq);
        cache
            .ingest(batch, head, &[], Utc::now())
            .expect("the batch is stored");
    }
    started.elapsed()
}

fn ingest(n: i64, dir: &Path) {
    std::fs::create_dir_all(dir).expect("the directory exists");
    // As busy as the 50-million-record build: 1,000 calls a minute.
    let span_us = n * 60_000_000 / 1_000;
    let rows: Vec<Incoming> = (1..=n).map(|seq| record(seq, n, span_us)).collect();
    let lines: Vec<Vec<u8>> = rows
        .iter()
        .map(|i| serde_json::to_vec(&i.log).expect("a record serialises"))
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    println!(
        "{n} records ({:.0} bytes each as NDJSON, 1,000 a minute), batches of {}",
        bytes as f64 / n as f64,
        batch_size()
    );

    let raw = raw_insert(&dir.join("raw.db"), &rows).expect("the raw insert works");
    println!(
        "raw SQLite bulk insert (the floor):     {:>9.0} records/s  ({:.2} s)",
        rate(rows.len(), raw),
        raw.as_secs_f64()
    );

    let cache = open(&dir.join("cache.db"));
    let took = ingest_all(&cache, &rows);
    println!(
        "cache ingest, parsed records:           {:>9.0} records/s  ({:.2} s, {:.2}x the floor's time)",
        rate(rows.len(), took),
        took.as_secs_f64(),
        took.as_secs_f64() / raw.as_secs_f64()
    );
    drop(cache);

    let cache = open(&dir.join("sync.db"));
    let started = Instant::now();
    let size = batch_size();
    let mut batch = Vec::with_capacity(size);
    for line in &lines {
        batch.push(check_line(line).expect("a generated line is valid"));
        if batch.len() == size {
            let head = batch.last().map_or(0, |i: &Incoming| i.log.seq);
            cache.ingest(&batch, head, &[], Utc::now()).expect("stored");
            batch.clear();
        }
    }
    if !batch.is_empty() {
        let head = batch.last().map_or(0, |i: &Incoming| i.log.seq);
        cache.ingest(&batch, head, &[], Utc::now()).expect("stored");
    }
    let took = started.elapsed();
    println!(
        "sync path, NDJSON lines checked + ingest:{:>9.0} records/s  ({:.2} s, {:.2}x the floor's time)",
        rate(lines.len(), took),
        took.as_secs_f64(),
        took.as_secs_f64() / raw.as_secs_f64()
    );
    for name in ["raw.db", "cache.db"] {
        println!(
            "size of {name}: {:.0} MB per million records",
            db_bytes(&dir.join(name)) as f64 / n as f64
        );
    }
}

/// The database's bytes on disk, its WAL included.
fn db_bytes(path: &Path) -> u64 {
    let wal = path.with_extension("db-wal");
    [path.to_owned(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn build(n: i64, path: &Path) {
    let cache = open(path);
    let have = cache.state().expect("the cursor").last_seq;
    let started = Instant::now();
    // Batches of 20,000: the same code as a sync's, fewer transactions.
    let chunk = 20_000;
    let mut seq = have + 1;
    while seq <= n {
        let last = (seq + chunk - 1).min(n);
        let rows: Vec<Incoming> = (seq..=last).map(|s| record(s, n, SPAN_US)).collect();
        cache
            .ingest(&rows, last, &[], Utc::now())
            .expect("the batch is stored");
        seq = last + 1;
        if ((last / chunk) as u64).is_multiple_of(50) || last == n {
            let done = last - have;
            println!(
                "{last} records ({:.0} records/s over this run)",
                rate(done as usize, started.elapsed())
            );
        }
    }
    drop(cache);
    let cache = open(path);
    cache.optimize().expect("optimised");
    // Fold the WAL into the database so its size is the cache's.
    let conn = Connection::open(path).expect("open");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpointed");
    println!(
        "{} records: {:.0} MB on disk, {:.0} MB per million records",
        n,
        db_bytes(path) as f64 / 1e6,
        db_bytes(path) as f64 / n as f64
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p95 = percentile(&times, 0.95);
    println!(
        "{what:<44} n={:<4} p50 {:>8.2} ms  p95 {:>8.2} ms  max {:>8.2} ms",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(p95),
        ms(*times.last().expect("timed at least once"))
    );
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let out = f();
    (started.elapsed(), out)
}

/// A page as the explorer fills it: calls from `before` until 100 records
/// came or the log ended (a call answers part of a page when its filter is
/// slow to match; see `query::page`). Answers the time of the first call,
/// of the whole walk, and the records found.
fn walk(
    cache: &LogCache,
    filter: &LogFilter,
    before: Option<i64>,
) -> (Duration, Duration, Vec<tollgate_api::CallLog>) {
    let started = Instant::now();
    let mut first = None;
    let mut items = Vec::new();
    let mut before = before;
    loop {
        let page = cache
            .page(filter, before, 100 - items.len() as u32)
            .expect("a page");
        first.get_or_insert_with(|| started.elapsed());
        items.extend(page.items);
        match page.next_before {
            Some(next) if items.len() < 100 => before = Some(next),
            _ => break,
        }
    }
    (first.unwrap_or_default(), started.elapsed(), items)
}

fn query(path: &Path, runs: usize) {
    let cache = open(path);
    let n = cache.state().expect("the cursor").last_seq;
    assert!(n > 0, "the cache is empty: build it first");
    println!("{n} cached records, {runs} runs of each query");
    let mut d = Dice(7);
    let busy = consumer_id(0);
    let quiet = consumer_id(1_900);
    let day_us = 86_400_000_000;
    let filters: Vec<(&str, LogFilter)> = vec![
        ("no filter", LogFilter::default()),
        (
            "status class 4xx",
            LogFilter {
                status_class: Some(4),
                ..LogFilter::default()
            },
        ),
        (
            "a busy consumer",
            LogFilter {
                consumer_id: Some(busy.clone()),
                ..LogFilter::default()
            },
        ),
        (
            "a quiet consumer",
            LogFilter {
                consumer_id: Some(quiet.clone()),
                ..LogFilter::default()
            },
        ),
        (
            "reason insufficient-funds",
            LogFilter {
                reason: Some("insufficient-funds".into()),
                ..LogFilter::default()
            },
        ),
        (
            "model + status class 5xx",
            LogFilter {
                model: Some("gpt-4o-mini".into()),
                status_class: Some(5),
                ..LogFilter::default()
            },
        ),
        (
            "a prompt API + latency >= 5 s",
            LogFilter {
                api: Some("prompt-3".into()),
                latency_min_us: Some(5_000_000),
                ..LogFilter::default()
            },
        ),
        (
            "cost >= 0.03",
            LogFilter {
                cost_min: Some("0.03".into()),
                ..LogFilter::default()
            },
        ),
    ];
    let mut pages = Vec::new();
    let mut firsts = Vec::new();
    println!(
        "-- a filtered page of 100 rows, newest first: half from a random cursor, half of a random day"
    );
    for (what, filter) in &filters {
        let mut times = Vec::new();
        for _ in 0..runs {
            let mut filter = filter.clone();
            let before = if d.below(2) == 0 {
                Some(1 + d.below(n as u64) as i64)
            } else {
                let from = end().timestamp_micros() - (1 + d.below(30) as i64) * day_us;
                filter.from = Utc.timestamp_micros(from).single();
                filter.to = Utc.timestamp_micros(from + day_us).single();
                None
            };
            let (first, full, _) = walk(&cache, &filter, before);
            firsts.push(first);
            times.push(full);
        }
        pages.extend(times.iter().copied());
        report(what, times);
    }
    report("every filter above (goal < 50 ms)", pages);
    report("  the first answer of each (rows or 'go on')", firsts);
    // The worst case: a filter on a column without an index that no record
    // matches walks the whole log, 25 ms per answer.
    let nothing = LogFilter {
        cost_min: Some("1000".into()),
        ..LogFilter::default()
    };
    let (mut firsts, mut walks) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (first, full, items) = walk(&cache, &nothing, None);
        assert!(items.is_empty());
        firsts.push(first);
        walks.push(full);
    }
    report("a filter no record matches: the whole walk", walks);
    report("  its first answer", firsts);

    println!("-- a full-text search: the newest 100 matches, or every match when fewer");
    let mut searches = Vec::new();
    let mut search_firsts = Vec::new();
    let mut by_kind: Vec<(&str, Vec<Duration>)> = Vec::new();
    for kind in [
        "a request id",
        "a consumer id",
        "two words of an error",
        "a word + status filter",
        "a key prefix, as a prefix*",
    ] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let seq = 1 + d.below(n as u64) as i64;
            let r = record(seq, n, SPAN_US).log;
            let c = consumer_id(((Dice(seq as u64).unit().powi(3)) * CONSUMERS as f64) as u64);
            let mut filter = LogFilter::default();
            filter.text = Some(match kind {
                "a request id" => r.id.clone(),
                "a consumer id" => c,
                "two words of an error" => "provider unavailable".into(),
                "a word + status filter" => {
                    filter.status_class = Some(4);
                    "subscription".into()
                }
                _ => {
                    let prefix = r.key_prefix.unwrap_or_else(|| "tg_0000".into());
                    format!("{}*", &prefix[..6])
                }
            });
            let (first, full, items) = walk(&cache, &filter, None);
            if kind == "a request id" {
                assert_eq!(items.len(), 1, "the request id is found");
            }
            search_firsts.push(first);
            times.push(full);
        }
        searches.extend(times.iter().copied());
        by_kind.push((kind, times));
    }
    for (kind, times) in by_kind {
        report(kind, times);
    }
    report("every search above (goal < 200 ms)", searches);
    report(
        "  the first answer of each (rows or 'go on')",
        search_firsts,
    );

    println!("-- a 30-day chart (hourly points, from the rollups)");
    let to = end();
    let from = to - chrono::Duration::days(30);
    let mut charts = Vec::new();
    for (what, dimension, value) in [
        ("every call", None, None),
        (
            "402 insufficient-funds",
            Some(tollgate_console::logs::LogDimension::Reason),
            Some("insufficient-funds".to_owned()),
        ),
        (
            "a busy consumer",
            Some(tollgate_console::logs::LogDimension::Consumer),
            Some(busy.clone()),
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let q = LogSeriesQuery {
                from,
                to,
                bucket: None,
                dimension,
                value: value.clone(),
            };
            let (took, points) = time(|| cache.chart(&q));
            assert!(!points.expect("a chart").is_empty(), "the chart has points");
            times.push(took);
        }
        charts.extend(times.iter().copied());
        report(what, times);
    }
    report("every chart above (goal < 100 ms)", charts);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| -> i64 {
        args.get(i)
            .and_then(|a| a.replace('_', "").parse().ok())
            .unwrap_or_else(|| panic!("argument {i} must be a number"))
    };
    let path = |i: usize| -> &Path {
        Path::new(
            args.get(i)
                .unwrap_or_else(|| panic!("argument {i} must be a path")),
        )
    };
    match args.first().map(String::as_str) {
        Some("ingest") => ingest(number(1), path(2)),
        Some("build") => build(number(1), path(2)),
        // The cache's ingest alone (for `perf stat`): N records, 1,000 a minute.
        Some("cache-only") => {
            let n = number(1);
            let rows: Vec<Incoming> = (1..=n).map(|seq| record(seq, n, n * 60_000)).collect();
            let took = ingest_all(&open(path(2)), &rows);
            println!("{:.0} records/s", rate(rows.len(), took));
        }
        Some("query") => query(path(1), number(2) as usize),
        _ => eprintln!("usage: bench_log_cache ingest N DIR | build N FILE | query FILE RUNS"),
    }
}
