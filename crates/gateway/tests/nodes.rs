//! Several `tollgated` nodes on one PostgreSQL database (a throwaway server
//! the test harness starts): what one node changes, the others apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Gateway, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A consumer's call as a node answers it (no subscription: a valid key is
/// refused 403 `not-subscribed`, a revoked one 401).
async fn call(node: &Gateway, key: &str) -> StatusCode {
    client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_one_node_is_refused_by_the_other_within_a_second() {
    let one = Gateway::start_on_postgres();
    let two = one.another_node();
    let team = one
        .send(
            "POST",
            "/admin/v1/teams",
            json!({"name": "Nodes"}),
            StatusCode::CREATED,
        )
        .await;
    let consumer = one
        .send(
            "POST",
            "/admin/v1/consumers",
            json!({"team_id": team["id"], "name": "Spread"}),
            StatusCode::CREATED,
        )
        .await;
    let keys = format!(
        "/admin/v1/consumers/{}/keys",
        consumer["id"].as_str().unwrap()
    );
    let mut waits = Vec::new();
    for i in 0..100 {
        let key: Value = one
            .send(
                "POST",
                &keys,
                json!({"name": format!("k{i}")}),
                StatusCode::CREATED,
            )
            .await;
        let secret = key["secret"].as_str().unwrap();
        // The other node knows the key (and now holds it in its cache).
        assert_eq!(call(&two, secret).await, StatusCode::FORBIDDEN);
        let revoke = format!(
            "/admin/v1/keys/{}/revoke",
            key["key"]["id"].as_str().unwrap()
        );
        one.send("POST", &revoke, Value::Null, StatusCode::OK).await;
        let revoked = Instant::now();
        loop {
            if call(&two, secret).await == StatusCode::UNAUTHORIZED {
                waits.push(revoked.elapsed());
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(5),
                "try {i}: still accepted after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    waits.sort();
    let (p50, p99) = (waits[49], waits[98]);
    println!(
        "revocation seen by the other node: p50 {p50:?}, p99 {p99:?}, max {:?}",
        waits[99]
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
}

#[tokio::test]
async fn a_node_whose_key_cannot_open_the_others_secrets_refuses_to_start() {
    let one = Gateway::start_on_postgres();
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(&one.dir).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("TOLLGATE_DATABASE_URL", url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give every node the same key"), "{err}");
    // The first node still serves.
    let info = one
        .send("GET", "/admin/v1/info", Value::Null, StatusCode::OK)
        .await;
    assert_eq!(info["name"], "test-gw");
}

/// Polls (5 s at most) `GET /admin/v1/nodes` on `node` until `done` holds.
async fn nodes_until(node: &Gateway, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..250 {
        let list = node
            .send("GET", "/admin/v1/nodes", Value::Null, StatusCode::OK)
            .await;
        let items = list["items"].as_array().unwrap().clone();
        if done(&items) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the node list never settled");
}

#[tokio::test]
async fn every_node_lists_the_nodes_of_its_database_and_which_leads_the_jobs() {
    let one = Gateway::start_on_postgres();
    let two = one.another_node();
    // Leadership is taken within a second or two of the start.
    let leads = |items: &[Value]| items.iter().filter(|n| n["leads_jobs"] == true).count() == 1;
    let items = nodes_until(&two, |items| items.len() == 2 && leads(items)).await;
    let mut addresses: Vec<&str> = items
        .iter()
        .map(|n| n["address"].as_str().unwrap())
        .collect();
    addresses.sort_unstable();
    let mut expected = vec![one.base.as_str(), two.base.as_str()];
    expected.sort_unstable();
    assert_eq!(addresses, expected);
    for n in &items {
        assert_eq!(n["status"], "up");
        assert_eq!(n["version"], env!("CARGO_PKG_VERSION"));
    }
    let from_one = nodes_until(&one, |items| items.len() == 2).await;
    let ids = |items: &[Value]| {
        let mut ids: Vec<String> = items
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&from_one), ids(&items));
}

#[tokio::test]
async fn a_single_gateway_is_one_node_that_leads_the_jobs() {
    let gw = Gateway::start();
    let items = nodes_until(&gw, |items| {
        items.len() == 1 && items[0]["leads_jobs"] == true
    })
    .await;
    assert_eq!(items[0]["status"], "up");
    assert_eq!(items[0]["address"], gw.base.as_str());
}

/// A gateway killed (SIGKILL) while a call holds a lease, then started
/// again: the leases of the process it was come back — as it starts on
/// SQLite (a SQLite store serves one process), once that process has been
/// silent for 20 s on PostgreSQL. An admin command opening the same store
/// meanwhile gives back nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_gets_back_the_leases_of_the_process_it_was() {
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut gw = Gateway::start_with(&format!(
        "price_per_request = \"0.01\"\nupstream_url = \"http://{sim}/v1\"\n"
    ));
    let team = gw
        .send(
            "POST",
            "/admin/v1/teams",
            json!({"name": "Restart"}),
            StatusCode::CREATED,
        )
        .await;
    let (id, key) = gw
        .subscribed_consumer(team["id"].as_str().unwrap(), "Held", json!({}))
        .await;
    gw.top_up(&id, "1.00").await;
    // A call answered only after 5 s holds part of the node's lease.
    let slow = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "sim-slow-5000", "messages": [{"role": "user", "content": "hi"}]}))
        .send();
    let slow = tokio::spawn(slow);
    let leases = |items: &[Value]| {
        items
            .iter()
            .map(|n| n["leases"].as_u64().unwrap())
            .sum::<u64>()
    };
    nodes_until(&gw, |items| leases(items) > 0).await;
    let (ok, _, err) = gw.cli(&["list"]);
    assert!(ok, "{err}");
    let items = nodes_until(&gw, |_| true).await;
    assert!(
        leases(&items) > 0,
        "an admin command gave the leases back: {items:?}"
    );

    gw.kill_and_restart();
    assert!(slow.await.unwrap().is_err(), "the slow call was cut off");
    let on_postgres = common::database_url(&gw.dir).is_some();
    let limit = if on_postgres {
        Duration::from_secs(40)
    } else {
        Duration::ZERO
    };
    let started = Instant::now();
    loop {
        let items = nodes_until(&gw, |_| true).await;
        if leases(&items) == 0 {
            break;
        }
        assert!(
            started.elapsed() <= limit,
            "leases still held after {limit:?}: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The environment that runs a node `days` days ahead of the real clock
/// (libfaketime, which `scripts/setup.sh` installs): subscriptions made
/// today are then due.
fn days_ahead(days: u32) -> [(&'static str, String); 2] {
    let lib = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists())
        .expect("libfaketime is installed (scripts/setup.sh)");
    [
        ("LD_PRELOAD", lib.to_str().unwrap().to_owned()),
        ("FAKETIME", format!("+{days}d")),
    ]
}

/// Each subscription's current period start, by id.
async fn period_starts(node: &Gateway) -> std::collections::HashMap<String, String> {
    let page = node
        .send(
            "GET",
            "/admin/v1/subscriptions?limit=200",
            Value::Null,
            StatusCode::OK,
        )
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["current_period_start"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Three nodes, many subscriptions due at once (the nodes run 40 days
/// ahead), the jobs' leader SIGKILLed while it renews them: another node
/// takes the job over and every subscription is renewed exactly once — one
/// charge for its first period and one for its renewal, never two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_renew_each_due_subscription_once_though_the_leader_dies() {
    const SUBSCRIPTIONS: usize = 150;
    let settings = "renewal_interval_secs = 1\n";
    let mut first = Gateway::start_on_postgres_with(settings);
    let team = first
        .send(
            "POST",
            "/admin/v1/teams",
            json!({"name": "Renewals"}),
            StatusCode::CREATED,
        )
        .await;
    let plan = first
        .send(
            "POST",
            "/admin/v1/plans",
            json!({"name": "Monthly", "currency": "USD", "price": "5.00", "period": "month",
                   "overage": "block", "apis": ["chat"]}),
            StatusCode::CREATED,
        )
        .await;
    let mut consumers = Vec::new();
    for i in 0..SUBSCRIPTIONS {
        let consumer = first
            .send(
                "POST",
                "/admin/v1/consumers",
                json!({"team_id": team["id"], "name": format!("Renewed {i}")}),
                StatusCode::CREATED,
            )
            .await;
        let id = consumer["id"].as_str().unwrap().to_owned();
        first
            .send(
                "POST",
                &format!("/admin/v1/consumers/{id}/payment-methods"),
                json!({"number": "4242424242424242", "exp_month": 12, "exp_year": 2099, "cvc": "123"}),
                StatusCode::CREATED,
            )
            .await;
        let sub = first
            .send(
                "POST",
                "/admin/v1/subscriptions",
                json!({"consumer_id": id, "plan_id": plan["id"]}),
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(sub["status"], "active", "{sub}");
        consumers.push(id);
    }
    let before = period_starts(&first).await;
    assert_eq!(before.len(), SUBSCRIPTIONS);
    // The nodes that renew them live 40 days on: one period later (a month
    // is 28 to 31 days), not two.
    first.terminate();
    let ahead = days_ahead(40);
    let env: Vec<(&str, &str)> = ahead.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let nodes: Vec<Gateway> = (0..3).map(|_| first.another_node_with_env(&env)).collect();

    // As soon as the leader has renewed some, it dies.
    let started = Instant::now();
    let killed = loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no renewal by a known leader within 20 s"
        );
        let renewed = period_starts(&nodes[0])
            .await
            .iter()
            .filter(|(id, start)| before[*id] != **start)
            .count();
        if renewed > 0 {
            let list = nodes[0]
                .send("GET", "/admin/v1/nodes", Value::Null, StatusCode::OK)
                .await;
            let leader = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["leads_jobs"] == true)
                .map(|n| n["address"].as_str().unwrap().to_owned());
            let Some(index) = nodes.iter().position(|n| Some(&n.base) == leader.as_ref()) else {
                continue;
            };
            println!("{renewed} of {SUBSCRIPTIONS} renewed when the leader was killed");
            break index;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut nodes = nodes;
    let mut dead = nodes.remove(killed);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    forget_faketime_files(dead.child.id());

    // Another node takes the job over and renews the rest.
    let started = Instant::now();
    let after = loop {
        let after = period_starts(&nodes[0]).await;
        if after.iter().all(|(id, start)| before[id] != *start) {
            break after;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not every subscription renewed within 30 s of the leader's death"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "all renewed {:.1?} after the leader's death",
        started.elapsed()
    );
    for consumer in &consumers {
        let charges = nodes[0]
            .send(
                "GET",
                &format!("/admin/v1/consumers/{consumer}/charges?limit=10"),
                Value::Null,
                StatusCode::OK,
            )
            .await;
        let items = charges["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "one charge per period: {charges}");
        assert!(
            items
                .iter()
                .all(|c| c["status"] == "succeeded" && c["amount"] == "5.00"),
            "{charges}"
        );
    }
    assert_eq!(after.len(), SUBSCRIPTIONS);
    // Stopped, not killed: libfaketime removes its files as they exit.
    for mut node in nodes {
        assert!(node.terminate().success());
    }
}

/// libfaketime makes a semaphore and a shared memory segment named after
/// each process it runs in, and removes them as the process exits; a
/// killed process leaves them behind, and a later `faketime` whose pid is
/// the same refuses to start ("sem_open: File exists").
fn forget_faketime_files(pid: u32) {
    for file in [
        format!("sem.faketime_sem_{pid}"),
        format!("faketime_shm_{pid}"),
    ] {
        let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(file));
    }
}
