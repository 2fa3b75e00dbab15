//! Three `tollgated` nodes on one PostgreSQL database behind nginx on
//! loopback (the deployment guide's topology): money stays exact across
//! them, with a node killed mid-run too, and plans' rate limits hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::nginx::Balancer;
use common::{Gateway, client};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate_api::money::parse_amount;

/// Calls at once, and the calls the money pays for (fewer than each node's
/// third of them, so that no node runs out of calls holding a lease).
const N: usize = 600;
const K: usize = 150;

struct Cluster {
    nodes: Vec<Gateway>,
    lb: Balancer,
    team: String,
}

impl Cluster {
    /// Three nodes charging 0.01 a call, forwarding to a simulated provider
    /// (test fixture), behind nginx.
    async fn start() -> Cluster {
        Cluster::start_on(&tollgate_test_postgres::database()).await
    }

    /// The same on the PostgreSQL database `url`.
    async fn start_on(url: &str) -> Cluster {
        let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let one = Gateway::start_on_database(
            url,
            &format!(
                "price_per_request = \"0.01\"\nprice_per_1k_tokens = \"0\"\nupstream_url = \"http://{sim}/v1\"\n"
            ),
        );
        let (two, three) = (one.another_node(), one.another_node());
        let nodes = vec![one, two, three];
        let lb = Balancer::start(&nodes.iter().collect::<Vec<_>>());
        let team = nodes[0]
            .send(
                "POST",
                "/admin/v1/teams",
                json!({"name": "Cluster"}),
                StatusCode::CREATED,
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        Cluster { nodes, lb, team }
    }

    fn admin(&self) -> &Gateway {
        &self.nodes[0]
    }

    /// A consumer with a key, subscribed to a new plan (`plan`'s fields over
    /// a free monthly plan charging its wallet): (consumer id, key).
    async fn consumer(&self, name: &str, plan: Value) -> (String, String) {
        self.admin()
            .subscribed_consumer(&self.team, name, plan)
            .await
    }

    async fn top_up(&self, consumer: &str, amount: &str) {
        self.admin().top_up(consumer, amount).await;
    }

    /// `n` calls at once through nginx: the statuses, and the problem type
    /// of every 402.
    async fn burst(&self, key: &str, n: usize) -> Vec<(StatusCode, Option<String>)> {
        calls_at_once(&self.lb, key, &hello(), n)
            .await
            .into_iter()
            .map(|a| (a.status, a.kind))
            .collect()
    }

    /// The wallet's ledger, oldest first: (kind, amount in micro-units).
    async fn ledger(&self, consumer: &str) -> Vec<(String, i64)> {
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!(
                    "/admin/v1/consumers/{consumer}/wallets/USD/entries?limit=200&cursor={c}"
                ),
                None => format!("/admin/v1/consumers/{consumer}/wallets/USD/entries?limit=200"),
            };
            let page = self
                .admin()
                .send("GET", &path, Value::Null, StatusCode::OK)
                .await;
            for e in page["items"].as_array().unwrap() {
                entries.push((
                    e["kind"].as_str().unwrap().to_owned(),
                    parse_amount(e["amount"].as_str().unwrap()).unwrap(),
                ));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        entries.reverse();
        entries
    }

    /// Waits (up to `limit`) until every node's usage is stored and the
    /// wallet's balance is `balance` (micro-units); then checks that the
    /// ledger sums to it and that top-ups = balance + usage: the usage.
    async fn settled(&self, consumer: &str, balance: i64, limit: Duration) -> i64 {
        let started = Instant::now();
        let balance = tollgate_api::money::format_amount(balance, 2);
        loop {
            let wallets = self
                .admin()
                .send(
                    "GET",
                    &format!("/admin/v1/consumers/{consumer}/wallets"),
                    Value::Null,
                    StatusCode::OK,
                )
                .await;
            if wallets[0]["balance"] == balance {
                break;
            }
            assert!(
                started.elapsed() < limit,
                "the balance is {} after {limit:?}, not {balance}",
                wallets[0]["balance"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ledger = self.ledger(consumer).await;
        let sum: i64 = ledger.iter().map(|(_, a)| a).sum();
        let top_ups: i64 = ledger
            .iter()
            .filter(|(k, _)| k == "top_up")
            .map(|(_, a)| a)
            .sum();
        let usage: i64 = ledger
            .iter()
            .filter(|(k, _)| k == "usage")
            .map(|(_, a)| -a)
            .sum();
        let balance = parse_amount(&balance).unwrap();
        assert_eq!(sum, balance, "the ledger sums to the balance");
        assert_eq!(top_ups, balance + usage, "top-ups = balance + usage");
        usage
    }

    /// Waits (up to `limit`) until `ready` holds of the listed nodes
    /// (`GET /admin/v1/nodes`'s items), which `what` names.
    async fn nodes_until(&self, what: &str, limit: Duration, ready: impl Fn(&[Value]) -> bool) {
        let started = Instant::now();
        loop {
            let nodes = self
                .admin()
                .send("GET", "/admin/v1/nodes", Value::Null, StatusCode::OK)
                .await;
            if ready(nodes["items"].as_array().unwrap()) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "not {what} within {limit:?}: {nodes}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until node 1 or node 2 holds a lease (calls are in flight on
    /// it): which one.
    async fn holding_leases(&self, limit: Duration) -> usize {
        let holder = std::sync::Mutex::new(None);
        self.nodes_until("node 1 or 2 holding a lease", limit, |items| {
            let found = (1..=2).find(|&i| {
                let address = self.nodes[i].base.as_str();
                items
                    .iter()
                    .any(|n| n["address"] == address && n["leases"].as_u64().unwrap() > 0)
            });
            *holder.lock().unwrap() = found;
            found.is_some()
        })
        .await;
        holder.into_inner().unwrap().unwrap()
    }

    /// Waits until no node holds a lease.
    async fn no_leases(&self, limit: Duration) {
        self.nodes_until("every lease given back", limit, |items| {
            items.iter().all(|n| n["leases"] == 0)
        })
        .await;
    }
}

/// Counts (served, refused `insufficient-funds`, anything else).
fn tally(results: &[(StatusCode, Option<String>)]) -> (usize, usize, Vec<StatusCode>) {
    let served = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let refused = results
        .iter()
        .filter(|(s, t)| {
            *s == StatusCode::PAYMENT_REQUIRED
                && t.as_deref()
                    .is_some_and(|t| t.ends_with("/insufficient-funds"))
        })
        .count();
    let other = results
        .iter()
        .filter(|(s, t)| {
            *s != StatusCode::OK
                && !(*s == StatusCode::PAYMENT_REQUIRED
                    && t.as_deref()
                        .is_some_and(|t| t.ends_with("/insufficient-funds")))
        })
        .map(|(s, _)| *s)
        .collect();
    (served, refused, other)
}

/// N calls spread over three nodes against a wallet paying for exactly K:
/// exactly K served, N − K refused `insufficient-funds`, the balance exact
/// and the ledger summing to it. Three rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_spend_a_wallet_exactly() {
    let cluster = Cluster::start().await;
    let (consumer, key) = cluster.consumer("Wallet", json!({})).await;
    for round in 0..3 {
        cluster
            .top_up(&consumer, &format!("{:.2}", K as f64 * 0.01))
            .await;
        let results = cluster.burst(&key, N).await;
        let (served, refused, other) = tally(&results);
        assert_eq!(
            (served, refused, other),
            (K, N - K, vec![]),
            "round {round}"
        );
        let usage = cluster.settled(&consumer, 0, Duration::from_secs(10)).await;
        assert_eq!(usage, (round + 1) * K as i64 * 10_000, "round {round}");
    }
}

/// The same with a plan's included credits (a plan that blocks overage):
/// exactly K calls' worth of credits, whatever node serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_spend_included_credits_exactly() {
    let cluster = Cluster::start().await;
    let credits = format!("{:.2}", K as f64 * 0.01);
    let (_, key) = cluster
        .consumer(
            "Credits",
            json!({"included_credits": credits, "overage": "block"}),
        )
        .await;
    let results = cluster.burst(&key, N).await;
    let (served, refused, other) = tally(&results);
    assert_eq!((served, refused, other), (K, N - K, vec![]));
    // Nothing more, from any node, once they are used.
    let again = cluster.burst(&key, 30).await;
    assert_eq!(tally(&again), (0, 30, vec![]));
}

/// A chat call's body: "hi", with a small completion allowance.
fn hello() -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "sim-small",
        "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}))
    .unwrap()
}

/// What a call got: its status, whether its body is a problem document
/// (RFC 9457), its problem type and the tokens it used.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    problem: bool,
    kind: Option<String>,
    tokens: u64,
}

/// One chat call of `body` to `url`.
async fn send_call(http: &reqwest::Client, url: &str, key: &str, body: &[u8]) -> Answer {
    let resp = http
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let problem = resp
        .headers()
        .get("content-type")
        .is_some_and(|t| t == "application/problem+json");
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        problem,
        kind: body["type"].as_str().map(str::to_owned),
        tokens: body["usage"]["total_tokens"].as_u64().unwrap_or(0),
    }
}

/// `n` calls of `body` at once through nginx.
async fn calls_at_once(lb: &Balancer, key: &str, body: &[u8], n: usize) -> Vec<Answer> {
    let (http, url) = (client(), lb.url("/v1/chat/completions"));
    futures_util::future::join_all((0..n).map(|_| send_call(&http, &url, key, body))).await
}

/// What a burst served (`served`, in calls or tokens) is within 5 % below
/// the plan's `limit` and never above it but for what came back while it
/// ran (`elapsed`); every other call was refused `rate-limited`.
fn within_the_limit(results: &[Answer], served: u64, limit: u64, elapsed: Duration, what: &str) {
    let refill = (limit as f64 * elapsed.as_secs_f64() / 60.0).ceil() as u64;
    println!(
        "{what}: {served} served of a limit of {limit} (+{refill} back during the {elapsed:.2?} burst), {} refused",
        results
            .iter()
            .filter(|r| r.status != StatusCode::OK)
            .count()
    );
    assert!(
        served * 100 >= limit * 95 && served <= limit + refill,
        "{what}: {served} served, limit {limit}, {refill} back meanwhile"
    );
    let odd: Vec<_> = results
        .iter()
        .filter(|r| {
            r.status != StatusCode::OK
                && !(r.status == StatusCode::TOO_MANY_REQUESTS
                    && r.kind
                        .as_deref()
                        .is_some_and(|t| t.ends_with("/rate-limited")))
        })
        .collect();
    assert!(odd.is_empty(), "{what}: {odd:?}");
}

/// A plan's rate limits hold across the three nodes: bursts spread over
/// them by nginx get the plan's calls (or tokens) per minute within 5 %
/// below it and never more (but for what came back during the burst).
/// Calls a minute over three rounds, each a new consumer; then tokens a
/// minute, with calls whose token estimate is what they use.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_hold_a_plans_rate_limits() {
    let cluster = Cluster::start().await;
    let body = hello();
    const CALLS: u64 = 150;
    for round in 0..3 {
        let (consumer, key) = cluster
            .consumer(
                &format!("Calls {round}"),
                json!({"rate_limits": {"requests_per_minute": CALLS}}),
            )
            .await;
        cluster.top_up(&consumer, "100.00").await;
        let started = Instant::now();
        let results = calls_at_once(&cluster.lb, &key, &body, 3 * CALLS as usize).await;
        let elapsed = started.elapsed();
        let served = results
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count() as u64;
        within_the_limit(
            &results,
            served,
            CALLS,
            elapsed,
            &format!("calls, round {round}"),
        );
    }

    // A call of 100 one-letter words uses 100 prompt tokens and 101 of
    // completion ("echo: " and the words); its max_tokens makes the
    // gateway's estimate (a token per 4 bytes of body, plus max_tokens)
    // exactly that.
    let words = vec!["a"; 100].join(" ");
    let used = 201;
    let body = (1..used)
        .map(|max_tokens| {
            serde_json::to_vec(&json!({"model": "sim-small",
                "messages": [{"role": "user", "content": words}], "max_tokens": max_tokens}))
            .unwrap()
        })
        .find(|b| {
            let max_tokens: Value = serde_json::from_slice(b).unwrap();
            (b.len() as u64).div_ceil(4) + max_tokens["max_tokens"].as_u64().unwrap() == used
        })
        .unwrap();
    const TOKENS: u64 = 100 * 201;
    let (consumer, key) = cluster
        .consumer(
            "Tokens",
            json!({"rate_limits": {"tokens_per_minute": TOKENS}}),
        )
        .await;
    cluster.top_up(&consumer, "100.00").await;
    let started = Instant::now();
    let results = calls_at_once(&cluster.lb, &key, &body, 300).await;
    let elapsed = started.elapsed();
    let served: u64 = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .map(|r| r.tokens)
        .sum();
    assert!(
        results
            .iter()
            .all(|r| r.status != StatusCode::OK || r.tokens == used),
        "each call used {used} tokens"
    );
    within_the_limit(&results, served, TOKENS, elapsed, "tokens");
}

/// A node killed (SIGKILL) in the middle of a run and restarted: only
/// calls in flight on it fail; no money is created or lost (the ledger sums
/// to the balance, top-ups = balance + usage, no more calls charged than
/// were answered or cut off); its leases come back once it is found silent,
/// and what is left is then spent exactly. Twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_run_loses_no_money() {
    let mut cluster = Cluster::start().await;
    let (consumer, key) = cluster.consumer("Killed", json!({})).await;
    let mut topped_up = 0;
    for round in 0..2 {
        cluster.top_up(&consumer, "3.00").await;
        topped_up += 3_000_000;
        let burst = {
            let (url, key) = (cluster.lb.url("/v1/chat/completions"), key.clone());
            tokio::spawn(async move {
                let http = client();
                let calls = (0..N).map(|_| {
                    // Answered a second later: the kill lands while calls are in flight.
                    let req = http.post(&url).bearer_auth(&key).json(&json!({
                        "model": "sim-slow-1000", "max_tokens": 16,
                        "messages": [{"role": "user", "content": "hi"}]}));
                    async move { req.send().await.map(|r| r.status()).ok() }
                });
                futures_util::future::join_all(calls).await
            })
        };
        let holder = cluster.holding_leases(Duration::from_secs(10)).await;
        cluster.nodes[holder].kill_and_restart();
        let statuses = burst.await.unwrap();
        let served = statuses
            .iter()
            .filter(|s| **s == Some(StatusCode::OK))
            .count();
        let refused = statuses
            .iter()
            .filter(|s| **s == Some(StatusCode::PAYMENT_REQUIRED))
            .count();
        let cut = N - served - refused;
        let killed_at = Instant::now();
        assert!(cut <= N / 3, "round {round}: {cut} calls cut off");

        // The killed node's leases come back once it has been silent long
        // enough (20 s); the usage of the others is stored by then.
        cluster.no_leases(Duration::from_secs(60)).await;
        eprintln!(
            "round {round}: {served} served, {refused} refused, {cut} cut off; \
             the leases were back {:?} after the kill",
            killed_at.elapsed()
        );
        let ledger = cluster.ledger(&consumer).await;
        let balance: i64 = ledger.iter().map(|(_, a)| a).sum();
        let usage = cluster
            .settled(&consumer, balance, Duration::from_secs(1))
            .await;
        assert_eq!(topped_up, balance + usage, "round {round}");
        assert!(balance >= 0, "round {round}: {balance}");
        let charged_this_round = usize::try_from(usage / 10_000).unwrap() - (round * 300);
        assert!(
            charged_this_round <= served + cut,
            "round {round}: {charged_this_round} charged, {served} served, {cut} cut off"
        );
        // What is left, spent exactly (each node sees more calls than it
        // pays for).
        let left = usize::try_from(balance / 10_000).unwrap();
        let n = 3 * left + 150;
        let results = cluster.burst(&key, n).await;
        assert_eq!(tally(&results), (left, n - left, vec![]), "round {round}");
        cluster.settled(&consumer, 0, Duration::from_secs(10)).await;
    }
}

/// PostgreSQL restarts (a fast shutdown: sessions cut, transactions in
/// flight rolled back; down for 3 s) while calls stream through the three
/// nodes: a call
/// that cannot be served answers 503 with a problem body (never a hang, a
/// 500 or a dropped connection), the nodes serve again by themselves once
/// the database is back, and every call served is charged exactly once
/// (usage = served calls × price; top-ups = balance + usage).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_fails_calls_with_503_and_charges_each_call_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    // A server of its own: the test restarts it.
    let mut server = tollgate_test_postgres::PgServer::start();
    let cluster = Cluster::start_on(&server.url("postgres")).await;
    let (consumer, key) = cluster.consumer("Restart", json!({})).await;
    cluster.top_up(&consumer, "100.00").await;

    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (stop, results) = (stop.clone(), results.clone());
            let (url, key) = (cluster.lb.url("/v1/chat/completions"), key.clone());
            tokio::spawn(async move {
                let http = client();
                while !stop.load(Ordering::Relaxed) {
                    let answer = send_call(&http, &url, &key, &hello()).await;
                    results.lock().unwrap().push(answer);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Down for longer than the usage writer's first retries.
    server = tokio::task::spawn_blocking(move || {
        server.restart_after(Duration::from_secs(3));
        server
    })
    .await
    .unwrap();
    let restarted = Instant::now();
    // Each node serves again by itself.
    for node in &cluster.nodes {
        let http = client();
        loop {
            let url = node.url("/v1/chat/completions");
            if send_call(&http, &url, &key, &hello()).await.status == StatusCode::OK {
                break;
            }
            assert!(
                restarted.elapsed() < Duration::from_secs(30),
                "{} does not serve 30 s after the restart",
                node.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "every node served again {:.1?} after the restart",
        restarted.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let results = results.lock().unwrap().clone();
    let served = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let unavailable: Vec<_> = results
        .iter()
        .filter(|r| r.status != StatusCode::OK)
        .collect();
    println!(
        "{} calls: {served} served, {} answered 503",
        results.len(),
        unavailable.len()
    );
    assert!(
        unavailable
            .iter()
            .all(|r| r.status == StatusCode::SERVICE_UNAVAILABLE && r.problem && r.kind.is_some()),
        "{unavailable:?}"
    );
    // The probes above were served and charged too.
    let served = served + cluster.nodes.len();
    let balance = 100_000_000 - served as i64 * 10_000;
    let usage = cluster
        .settled(&consumer, balance, Duration::from_secs(30))
        .await;
    assert_eq!(
        usage,
        served as i64 * 10_000,
        "each served call charged once"
    );
    drop(server);
}

/// One call log for the three nodes: calls spread over them by nginx are
/// all in it once, with seqs 1, 2, 3… in commit order, and every node
/// exports the same log (the console syncs one instance however many nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_exports_the_same_call_log() {
    let cluster = Cluster::start().await;
    let (consumer, key) = cluster.consumer("Logged", json!({})).await;
    cluster.top_up(&consumer, "10.00").await;
    let results = cluster.burst(&key, 90).await;
    assert!(results.iter().all(|(s, _)| *s == StatusCode::OK));
    let export = async |node: &Gateway| {
        let resp = client()
            .get(node.url("/admin/v1/logs/export?limit=1000"))
            .bearer_auth(&node.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    };
    // Each node's last window is stored within a moment.
    let started = Instant::now();
    let log = loop {
        let log = export(&cluster.nodes[0]).await;
        if log.lines().count() == 90 {
            break log;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} records, not 90",
            log.lines().count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let seqs: Vec<i64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=90).collect::<Vec<_>>());
    for node in &cluster.nodes[1..] {
        assert_eq!(export(node).await, log, "{} exports another log", node.base);
    }
}
