//! The 402 doctor's figure (issue 6; `scripts/bench-doctor.sh` runs it,
//! BENCHMARKS.md records it): the time from opening the doctor to a
//! diagnosis — `Console::diagnose`, what the doctor screen's one IPC call
//! runs —, live from a real `tollgated` and from the call-log cache once
//! that gateway is stopped.
//!
//! `bench_doctor TOLLGATED CONSUMERS RUNS`: starts the gateway (a fresh data
//! directory) and the simulated provider (a test fixture), gives it CONSUMERS
//! consumers on a metered plan — nine in ten with money, one in ten without —
//! and a plan or a provider for the rest of what a real instance holds, makes
//! every consumer call five times (the broke ones are refused with 402),
//! syncs the log into the console's cache, then times RUNS diagnoses of each
//! kind (cycling over the refused requests and their consumers): from a
//! request id, from a consumer, from a pasted response — live, then with the
//! gateway stopped. Prints a markdown table (p50 / p95 / max, in ms).
//! Needs a keyring (run it under scripts/with-keyring.sh).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_console::Console;
use tollgate_console::client::ClientOptions;
use tollgate_console::doctor::{DoctorStart, EvidenceSource};
use tollgate_console::models::{Environment, InstanceInput};
use tollgate_console::sensitive::Sensitive;
use tollgate_console::vault::Vault;

struct Gateway {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(bin: &str, dir: &std::path::Path) -> Gateway {
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--name",
            "bench",
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("tollgated starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("tollgated exited early")
            .expect("a line");
        if let Some(url) = line.strip_prefix("tollgated listening on ") {
            break url.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let token = std::fs::read_to_string(dir.join("bootstrap-admin-token"))
        .expect("token file")
        .trim()
        .to_owned();
    Gateway { child, base, token }
}

async fn admin(
    http: &reqwest::Client,
    gw: &Gateway,
    method: &str,
    path: &str,
    body: Value,
) -> Value {
    let mut req = http
        .request(
            method.parse().expect("method"),
            format!("{}{path}", gw.base),
        )
        .bearer_auth(&gw.token)
        .header("Idempotency-Key", ulid::Ulid::new().to_string());
    if !body.is_null() {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("admin call");
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {body}");
    body
}

/// A call as the consumer made it: (status, request id, raw response).
async fn chat(http: &reqwest::Client, gw: &Gateway, key: &str) -> (u16, String, String) {
    let resp = http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(key)
        .json(&json!({"model": "sim-small", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .expect("chat");
    let status = resp.status();
    let id = resp.headers()["x-request-id"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    let mut raw = format!("HTTP/1.1 {status}\r\n");
    for (n, v) in resp.headers() {
        raw.push_str(&format!("{n}: {}\r\n", v.to_str().unwrap_or("")));
    }
    raw.push_str("\r\n");
    raw.push_str(&resp.text().await.unwrap_or_default());
    (status.as_u16(), id, raw)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

async fn time_kind(
    console: &Console,
    id: &str,
    starts: &[DoctorStart],
    runs: usize,
    expect: EvidenceSource,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let start = starts[i % starts.len()].clone();
        let t = Instant::now();
        let d = console.diagnose(id, start).await.expect("a diagnosis");
        times.push(t.elapsed());
        assert_eq!(d.source, expect);
    }
    times.sort();
    times
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(bin), Some(consumers), Some(runs)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: bench_doctor TOLLGATED CONSUMERS RUNS");
        std::process::exit(2);
    };
    let consumers: usize = consumers.parse().expect("CONSUMERS is a number");
    let runs: usize = runs.parse().expect("RUNS is a number");
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_gateway(bin, &dir.path().join("gw"));
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim provider");
    let http = reqwest::Client::new();

    let p = admin(&http, &gw, "POST", "/admin/v1/providers",
        json!({"name": "Sim", "kind": "openai-compatible", "base_url": format!("http://{sim}/v1"), "currency": "USD",
               "models": [{"name": "sim-small", "input_price": "1000", "output_price": "2000"}]})).await;
    admin(
        &http,
        &gw,
        "POST",
        &format!(
            "/admin/v1/providers/{}/keys",
            p["id"].as_str().unwrap_or_default()
        ),
        json!({"label": "k", "secret": "sim-key-good-0042"}),
    )
    .await;
    let team = admin(
        &http,
        &gw,
        "POST",
        "/admin/v1/teams",
        json!({"name": "Bench"}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let plan = admin(
        &http,
        &gw,
        "POST",
        "/admin/v1/plans",
        json!({"name": "Metered", "currency": "USD", "price": "0", "period": "month",
               "overage": "charge_wallet", "apis": ["chat"]}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut refused = Vec::new();
    let setup = Instant::now();
    for n in 0..consumers {
        let c = admin(
            &http,
            &gw,
            "POST",
            "/admin/v1/consumers",
            json!({"team_id": team, "name": format!("c{n}")}),
        )
        .await;
        let cid = c["id"].as_str().unwrap_or_default().to_owned();
        let key = admin(
            &http,
            &gw,
            "POST",
            &format!("/admin/v1/consumers/{cid}/keys"),
            json!({"name": "k"}),
        )
        .await["secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        admin(
            &http,
            &gw,
            "POST",
            "/admin/v1/subscriptions",
            json!({"consumer_id": cid, "plan_id": plan}),
        )
        .await;
        let broke = n % 10 == 0;
        if !broke {
            admin(
                &http,
                &gw,
                "POST",
                &format!("/admin/v1/consumers/{cid}/wallets/USD/entries"),
                json!({"kind": "top_up", "amount": "50"}),
            )
            .await;
        }
        for _ in 0..5 {
            let (status, request_id, raw) = chat(&http, &gw, &key).await;
            if status == 402 {
                refused.push((cid.clone(), request_id, raw));
            }
        }
    }
    eprintln!(
        "set up {consumers} consumers and {} calls in {:.1} s",
        consumers * 5,
        setup.elapsed().as_secs_f64()
    );

    let data = tempfile::tempdir().expect("tempdir");
    let service = format!(
        "tollgate-bench-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let console = Console::open(data.path(), Vault::new(&service), ClientOptions::default())
        .expect("console");
    let id = console
        .add_instance(InstanceInput {
            name: "Bench".into(),
            base_url: gw.base.clone(),
            environment: Environment::Dev,
            color: None,
            ca_cert_pem: None,
            tls_verify: true,
            admin_token: Some(Sensitive::new(gw.token.clone())),
        })
        .await
        .expect("instance")
        .id;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = console.sync_logs(&id, |_| {}).await.expect("sync");
    eprintln!(
        "synced {} records; {} refused calls to diagnose",
        report.inserted,
        refused.len()
    );

    let by_request: Vec<DoctorStart> = refused
        .iter()
        .map(|(_, r, _)| DoctorStart::RequestId {
            request_id: r.clone(),
        })
        .collect();
    let by_consumer: Vec<DoctorStart> = refused
        .iter()
        .map(|(c, _, _)| DoctorStart::Consumer {
            consumer_id: c.clone(),
        })
        .collect();
    let by_response: Vec<DoctorStart> = refused
        .iter()
        .map(|(_, _, raw)| DoctorStart::Response { text: raw.clone() })
        .collect();
    // One unmeasured round: connections and caches warm, as in a session.
    time_kind(&console, &id, &by_request, 5, EvidenceSource::Live).await;

    let kinds = [
        ("request id", &by_request),
        ("consumer", &by_consumer),
        ("pasted response", &by_response),
    ];
    let mut rows = Vec::new();
    let mut gateway = Some(gw);
    for (source, expect) in [
        ("live", EvidenceSource::Live),
        ("cache (gateway stopped)", EvidenceSource::Cache),
    ] {
        if expect == EvidenceSource::Cache {
            drop(gateway.take());
        }
        for (kind, starts) in kinds {
            rows.push((
                kind,
                source,
                time_kind(&console, &id, starts, runs, expect).await,
            ));
        }
    }
    println!("| Start | Evidence | Runs | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (kind, source, times) in rows {
        println!(
            "| {kind} | {source} | {} | {} | {} | {} |",
            times.len(),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(*times.last().unwrap_or(&Duration::ZERO))
        );
    }
}
