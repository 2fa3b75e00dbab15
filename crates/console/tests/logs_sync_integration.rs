//! The call-log cache and its sync against a real `tollgated` whose traffic
//! went through its data plane (the simulated provider, a test fixture,
//! answering): the cache's counts and sums equal the gateway's exactly, a
//! re-sync adds nothing, a restarted gateway is resumed, everything works
//! offline, and a headless sync killed (SIGKILL) at random points 20+ times
//! leaves a database that passes `PRAGMA integrity_check` with every
//! gateway record once — no gap, no duplicate.
//!
//! The headless sync is `tollgate logs sync` (`tollgate_console::cli`): this
//! test binary runs it in a child process of its own (the test
//! `headless_sync_child`, a no-op unless the parent sets its environment),
//! with the same vault and data directory as the parent's console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use common::admin::{
    admin, gateway_records, gateway_stats, http, metered_plan, simulated_provider,
    subscribed_consumer,
};
use common::{Gateway, input, test_vault};
use reqwest::StatusCode;
use serde_json::json;
use tollgate_api::money::parse_amount;
use tollgate_api::{CallLog, CallStats};
use tollgate_console::Console;
use tollgate_console::client::ClientOptions;
use tollgate_console::logs::{LogExportFormat, LogFilter, LogStatsQuery};
use tollgate_console::vault::Vault;

/// A provider of the simulator, a team, and consumers on plans.
struct Traffic {
    keys: Vec<(String, String)>,
}

impl Traffic {
    async fn setup(gw: &Gateway, sim: &str) -> Traffic {
        for (name, currency, models) in [
            (
                "Sim",
                "USD",
                json!([{"name": "sim-small", "input_price": "1000", "output_price": "2000"},
                                  {"name": "sim-large", "input_price": "3000", "output_price": "6000"}]),
            ),
            (
                "Euro",
                "EUR",
                json!([{"name": "euro-model", "input_price": "500", "output_price": "700"}]),
            ),
        ] {
            simulated_provider(gw, sim, name, currency, models).await;
        }
        let team = admin(gw, "POST", "/admin/v1/teams", json!({"name": "Logs"})).await;
        let team = team["id"].as_str().unwrap();
        let mut keys = Vec::new();
        for (name, currency, top_up) in [
            ("Alice", "USD", "100"),
            ("Bob", "USD", "100"),
            ("Euro", "EUR", "100"),
            ("Broke", "USD", "0"),
        ] {
            let plan = metered_plan(gw, &format!("Plan {name}"), currency).await;
            let (_, key) = subscribed_consumer(gw, team, name, &plan, currency, top_up).await;
            keys.push((name.to_owned(), key));
        }
        Traffic { keys }
    }

    fn key(&self, name: &str) -> &str {
        &self.keys.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// `n` rounds of calls, 8 at a time: served, streamed, refused 401,
    /// 402, 404, and model lists. Answers the statuses seen.
    async fn run(&self, gw: &Gateway, rounds: usize) -> Vec<u16> {
        let mut calls = Vec::new();
        for i in 0..rounds {
            let (key, model, stream) = match i % 10 {
                0..=2 => (self.key("Alice"), "sim-small", false),
                3 => (self.key("Bob"), "sim-large", true),
                4 => (self.key("Bob"), "sim-small", false),
                5 => (self.key("Euro"), "euro-model", i % 20 == 5),
                6 => (self.key("Broke"), "sim-small", false),
                7 => ("tg_notakey1234_secret0000", "sim-small", false),
                8 => (self.key("Alice"), "no-such-model", false),
                _ => (self.key("Bob"), "", false),
            };
            calls.push((key.to_owned(), model, stream, i));
        }
        let base = gw.base.clone();
        let mut statuses = Vec::new();
        for chunk in calls.chunks(8) {
            let batch = chunk.iter().map(|(key, model, stream, i)| {
                let base = base.clone();
                async move {
                    let resp = if model.is_empty() {
                        http()
                            .get(format!("{base}/v1/models"))
                            .bearer_auth(key)
                            .send()
                            .await
                            .unwrap()
                    } else {
                        http()
                            .post(format!("{base}/v1/chat/completions"))
                            .bearer_auth(key)
                            .header("user-agent", format!("logs-test/{}", i % 3))
                            .json(&json!({"model": model, "stream": stream, "max_tokens": 8 + i % 7,
                                          "messages": [{"role": "user", "content": format!("count to {i}")}]}))
                            .send()
                            .await
                            .unwrap()
                    };
                    let status = resp.status().as_u16();
                    let _ = resp.bytes().await;
                    status
                }
            });
            statuses.extend(futures_util::future::join_all(batch).await);
        }
        statuses
    }
}

fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::minutes(1)).unwrap()
}

/// Every cached record, oldest first.
async fn cached(console: &Console, id: &str) -> Vec<CallLog> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = console
            .log_page(id, LogFilter::default(), before, Some(1_000))
            .await
            .unwrap();
        out.extend(page.items);
        match page.next_before {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    out.reverse();
    out
}

/// The cache's figures equal the gateway's over the same range, and both
/// equal a count of the gateway's records; percentiles within 1/16.
async fn assert_same_figures(console: &Console, id: &str, gw: &Gateway, records: &[CallLog]) {
    let from = minute_floor(records[0].at);
    let to = minute_floor(records.last().unwrap().at) + chrono::Duration::minutes(2);
    let theirs = gateway_stats(gw, from, to).await;
    let ours = console
        .log_stats(
            id,
            LogStatsQuery {
                from: Some(from),
                to: Some(to),
                bucket: Some(tollgate_console::logs::LogBucket::Minute),
            },
        )
        .await
        .unwrap();
    let exact = |s: &CallStats| {
        (
            s.requests,
            s.errors,
            s.tokens_in,
            s.tokens_out,
            s.cost.clone(),
            s.series.clone(),
            s.by_reason.clone(),
            s.by_model.clone(),
            s.top_consumers.clone(),
        )
    };
    assert_eq!(exact(&ours), exact(&theirs));
    for (a, b) in [
        (ours.latency_p50_us, theirs.latency_p50_us),
        (ours.latency_p95_us, theirs.latency_p95_us),
        (ours.latency_p99_us, theirs.latency_p99_us),
    ] {
        assert!((a - b).abs() * 16 <= b.max(16), "{a} vs {b}");
    }
    // And a count of the gateway's own records.
    assert_eq!(ours.requests, records.len() as i64);
    assert_eq!(
        ours.errors,
        records.iter().filter(|r| r.status >= 400).count() as i64
    );
    assert_eq!(
        ours.tokens_out,
        records.iter().map(|r| r.tokens_out).sum::<i64>()
    );
    for total in &ours.cost {
        let sum: i64 = records
            .iter()
            .filter(|r| r.currency.as_deref() == Some(total.currency.as_str()))
            .map(|r| parse_amount(&r.cost).unwrap())
            .sum();
        assert_eq!(
            parse_amount(&total.amount).unwrap(),
            sum,
            "{}",
            total.currency
        );
    }
    for reason in &ours.by_reason {
        let n = records
            .iter()
            .filter(|r| r.reason.as_deref() == Some(reason.reason.as_str()))
            .count();
        assert_eq!(reason.count, n as i64, "{}", reason.reason);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_matches_the_gateway_resumes_after_a_restart_and_works_offline() {
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sim = format!("http://{sim}");
    let gw_dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_in("logs-gw", gw_dir.path(), "127.0.0.1:0");
    let traffic = Traffic::setup(&gw, &sim).await;
    let statuses = traffic.run(&gw, 300).await;
    for want in [200, 401, 402, 404] {
        assert!(statuses.contains(&want), "{want} in {statuses:?}");
    }

    let data = tempfile::tempdir().unwrap();
    let console = Console::open(data.path(), test_vault(), ClientOptions::default()).unwrap();
    let id = console
        .add_instance(input("Logs", &gw.base, Some(&gw.token)))
        .await
        .unwrap()
        .id;
    let mut progress = Vec::new();
    let report = console
        .sync_logs(&id, |p| progress.push(p.clone()))
        .await
        .unwrap();
    let records = gateway_records(&gw).await;
    assert_eq!(records.len(), 300);
    assert_eq!(report.inserted, 300);
    assert_eq!(report.last_seq, records.last().unwrap().seq);
    assert_eq!(
        (report.behind, report.duplicates, report.conflicts),
        (0, 0, 0)
    );
    assert_eq!(progress.last().unwrap().synced, 300);
    assert_eq!(progress.last().unwrap().behind, 0);
    // Every record exactly as the gateway has it, and its figures.
    assert!(cached(&console, &id).await == records);
    assert_same_figures(&console, &id, &gw, &records).await;
    let currencies: Vec<String> = console
        .log_stats(
            &id,
            LogStatsQuery {
                from: Some(records[0].at - chrono::Duration::minutes(1)),
                ..LogStatsQuery::default()
            },
        )
        .await
        .unwrap()
        .cost
        .into_iter()
        .map(|c| c.currency)
        .collect();
    assert_eq!(currencies, ["EUR", "USD"]);

    // A second sync adds nothing.
    let again = console.sync_logs(&id, |_| {}).await.unwrap();
    assert_eq!((again.inserted, again.last_seq), (0, report.last_seq));
    assert_eq!(console.log_cache_info(&id).await.unwrap().records, 300);

    // More traffic; the gateway restarted (SIGTERM: what it holds is
    // stored) on the same port; the sync takes only what is new.
    traffic.run(&gw, 120).await;
    let listen = gw.base.trim_start_matches("http://").to_owned();
    gw.terminate();
    let down = console.sync_logs(&id, |_| {}).await.unwrap_err();
    assert_eq!(down.code(), "connection_refused", "{down}");
    let info = console.log_cache_info(&id).await.unwrap();
    assert_eq!(info.last_error.unwrap().code, "connection_refused");
    assert!(info.last_sync_at.is_some());

    // Offline: the explorer, search, charts and export work from the cache.
    let refusals = console
        .log_page(
            &id,
            LogFilter {
                status_class: Some(4),
                ..LogFilter::default()
            },
            None,
            Some(1_000),
        )
        .await
        .unwrap();
    assert_eq!(
        refusals.items.len(),
        records.iter().filter(|r| r.status / 100 == 4).count()
    );
    let found = console
        .log_page(
            &id,
            LogFilter {
                text: Some("model-not-found".into()),
                ..LogFilter::default()
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        found.items.len(),
        records
            .iter()
            .filter(|r| r.reason.as_deref() == Some("model-not-found"))
            .count()
    );
    let detail = console.log_record(&id, records[7].seq).await.unwrap();
    assert_eq!(detail, records[7]);
    let out = tempfile::tempdir().unwrap();
    for (format, name) in [
        (LogExportFormat::Csv, "logs.csv"),
        (LogExportFormat::Json, "logs.json"),
    ] {
        let path = out.path().join(name);
        let written = Arc::new(AtomicU64::new(0));
        let heard = written.clone();
        let summary = console
            .export_logs(
                &id,
                LogFilter::default(),
                format,
                path.to_str().unwrap(),
                move |p| {
                    heard.store(p.written, Ordering::Relaxed);
                },
            )
            .await
            .unwrap();
        assert_eq!(summary.records, 300);
        assert_eq!(written.load(Ordering::Relaxed), 300);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(summary.bytes, text.len() as u64);
        // No admin token, no consumer key.
        assert!(!text.contains(&gw.token));
        for (_, key) in &traffic.keys {
            assert!(!text.contains(key.as_str()), "a consumer key in {name}");
        }
        assert!(!text.contains("tg_notakey1234_secret0000"));
        match format {
            LogExportFormat::Csv => assert_eq!(text.lines().count(), 301),
            LogExportFormat::Json => {
                let parsed: Vec<CallLog> = serde_json::from_str(&text).unwrap();
                let mut newest_first = records.clone();
                newest_first.reverse();
                assert!(parsed == newest_first);
            }
        }
    }

    let gw = Gateway::start_in("logs-gw", gw_dir.path(), &listen);
    traffic.run(&gw, 30).await;
    let resumed = console.sync_logs(&id, |_| {}).await.unwrap();
    let records = gateway_records(&gw).await;
    assert_eq!(records.len(), 450);
    assert_eq!(resumed.inserted, 150);
    assert!(cached(&console, &id).await == records);
    assert_same_figures(&console, &id, &gw, &records).await;
    let info = console.log_cache_info(&id).await.unwrap();
    assert!(info.last_error.is_none());
    assert_eq!((info.records, info.behind), (450, 0));
    assert!(info.bytes > 0);
}

/// The child side: `tollgate logs sync` in this process, with the parent's
/// data directory and vault. Ignored in a normal run: only the parent test
/// runs it (`--ignored --exact`), and without the parent's environment it
/// fails rather than pass having done nothing.
#[test]
#[ignore = "the child process of a_headless_sync_killed_at_random_points_loses_nothing_and_repeats_nothing"]
fn headless_sync_child() {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is set only by the parent test"))
    };
    let (dir, service, instance) = (
        var("LOGS_CHILD_DATA_DIR"),
        var("LOGS_CHILD_VAULT"),
        var("LOGS_CHILD_INSTANCE"),
    );
    let args = [
        "tollgate",
        "logs",
        "sync",
        "--instance",
        &instance,
        "--page-size",
        "700",
        "--batch-size",
        "60",
    ]
    .map(str::to_owned)
    .to_vec();
    let code = tollgate_console::cli::run_with(args, dir.into(), Vault::new(&service));
    std::process::exit(code);
}

/// `n` calls with a key that is not one, 32 at a time, counted in `made`.
async fn refused_calls(base: &str, n: u64, made: &AtomicU64) {
    let mut left = n;
    while left > 0 {
        let now = left.min(32);
        left -= now;
        let calls = (0..now).map(|_| {
            http()
                .get(format!("{base}/v1/models"))
                .bearer_auth("tg_notakey1234_secret0000")
                .send()
        });
        for r in futures_util::future::join_all(calls).await {
            assert_eq!(r.unwrap().status(), StatusCode::UNAUTHORIZED);
            made.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn child(data: &Path, service: &str, instance: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "headless_sync_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("LOGS_CHILD_DATA_DIR", data)
    .env("LOGS_CHILD_VAULT", service)
    .env("LOGS_CHILD_INSTANCE", instance)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

/// What the cache file holds, read directly: integrity, every seq, the cursor,
/// the record count it keeps and the requests its rollups counted.
fn inspect(path: &Path) -> (String, Vec<i64>, i64, i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let seqs: Vec<i64> = conn
        .prepare("SELECT seq FROM records ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let (last_seq, records): (i64, i64) = conn
        .query_row("SELECT last_seq, records FROM sync_state", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let rolled: i64 = conn
        .query_row(
            "SELECT coalesce(sum(requests), 0) FROM rollup_day WHERE dim = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (integrity, seqs, last_seq, records, rolled)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_headless_sync_killed_at_random_points_loses_nothing_and_repeats_nothing() {
    let gw = Gateway::start("logs-kill-gw");
    let data = tempfile::tempdir().unwrap();
    let service = format!(
        "tollgate-test-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let console =
        Console::open(data.path(), Vault::new(&service), ClientOptions::default()).unwrap();
    let id = console
        .add_instance(input("Killed", &gw.base, Some(&gw.token)))
        .await
        .unwrap()
        .id;
    let cache_file = data.path().join("logs").join(format!("{id}.db"));
    drop(console);

    // Refused calls are the cheapest records: thousands up front, and more
    // arriving all along, so that every kill lands in the middle of a sync.
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    refused_calls(&gw.base, 6_000, &made).await;
    let background = {
        let (stop, made, base) = (stop.clone(), made.clone(), gw.base.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                refused_calls(&base, 16, &made).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill delays from seed {seed}");
    let mut state = seed | 1;
    let mut random = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    // Kills after the run had stored something (so, while it was reading
    // and storing), and runs that stored anything.
    let (mut kills, mut mid_ingest, mut progressed, mut previous) = (0, 0, 0, 0i64);
    let mut runs = 0;
    while kills < 24 || mid_ingest < 20 {
        runs += 1;
        assert!(runs < 300, "the child keeps ending before it is killed");
        let mut proc = child(data.path(), &service, &id).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(30 + random(600))).await;
        let killed = proc.try_wait().unwrap().is_none();
        if killed {
            proc.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        proc.wait().unwrap();
        if !cache_file.exists() {
            continue;
        }
        // After each kill: a sound database whose records are exactly the
        // gateway's up to the cursor, counted once in the rollups.
        let (integrity, seqs, last_seq, records, rolled) = inspect(&cache_file);
        assert_eq!(integrity, "ok");
        assert!(last_seq >= previous, "the cursor went back");
        if last_seq > previous {
            progressed += 1;
            mid_ingest += i32::from(killed);
        }
        previous = last_seq;
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(seqs.last().copied().unwrap_or(0), last_seq);
        assert_eq!((records, rolled), (seqs.len() as i64, seqs.len() as i64));
    }
    stop.store(true, Ordering::Relaxed);
    background.await.unwrap();
    assert!(progressed >= 5, "only {progressed} runs stored anything");

    // A last run to the end: every gateway record once.
    let status = child(data.path(), &service, &id).status().unwrap();
    assert!(status.success());
    let (integrity, seqs, last_seq, records, rolled) = inspect(&cache_file);
    assert_eq!(integrity, "ok");
    let want: Vec<i64> = gateway_records(&gw).await.iter().map(|r| r.seq).collect();
    assert_eq!(want.len() as u64, made.load(Ordering::Relaxed));
    assert!(want.len() > 6_000);
    assert_eq!(seqs, want);
    assert_eq!(last_seq, *want.last().unwrap());
    assert_eq!((records, rolled), (want.len() as i64, want.len() as i64));
    println!(
        "{kills} kills ({mid_ingest} while storing), {runs} runs, {} records",
        want.len()
    );
}
