//! The console against two real `tollgated` processes, with its admin tokens
//! in the real Secret Service. Run under scripts/with-keyring.sh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, input, test_vault};
use std::time::Duration;

use tollgate_api::{CreateTeam, NodeStatus, Scope, UpdateTeam};
use tollgate_console::Console;
use tollgate_console::client::ClientOptions;
use tollgate_console::models::Reachability;
use tollgate_console::vault::ADMIN_TOKEN;

#[tokio::test(flavor = "multi_thread")]
async fn manages_two_gateways_end_to_end() {
    let mut east = Gateway::start("east");
    let west = Gateway::start("west");
    let data = tempfile::tempdir().unwrap();
    let vault = test_vault();
    let console = Console::open(data.path(), vault.clone(), ClientOptions::default()).unwrap();
    assert!(console.keyring_status().await.available);

    let a = console
        .add_instance(input("East", &east.base, Some(&east.token)))
        .await
        .unwrap();
    let b = console
        .add_instance(input("West", &format!("{}/", west.base), Some(&west.token)))
        .await
        .unwrap();
    assert_eq!(b.base_url, west.base, "trailing slash normalised");
    assert_eq!(a.color, "#2e8b57", "dev colour by default");

    // The token is in the keyring, and nowhere in the console's database.
    assert_eq!(
        vault.get(&a.id, ADMIN_TOKEN).unwrap().unwrap().expose(),
        &east.token
    );
    let db = std::fs::read(data.path().join("console.db")).unwrap();
    let wal = std::fs::read(data.path().join("console.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes
                .windows(east.token.len())
                .any(|w| w == east.token.as_bytes())
        );
    }

    // Connection tests report version, scopes, latency and skew.
    for (instance, name) in [(&a, "east"), (&b, "west")] {
        let report = console.test_connection(&instance.id).await.unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.instance_name.as_deref(), Some(name));
        assert_eq!(report.version.as_deref(), Some("0.1.0"));
        assert_eq!(report.scopes, Scope::ALL.to_vec());
        assert!(report.latency_ms.unwrap() > 0.0);
        assert!(
            report.clock_skew_ms.unwrap().abs() < 5_000,
            "same machine, same clock"
        );
    }

    // Switching the current instance.
    assert_eq!(
        console.current_instance().unwrap().as_deref(),
        Some(a.id.as_str())
    );
    console.set_current_instance(&b.id).unwrap();
    assert_eq!(
        console.current_instance().unwrap().as_deref(),
        Some(b.id.as_str())
    );
    assert_eq!(
        console
            .set_current_instance("ins_missing")
            .unwrap_err()
            .code(),
        "not_found"
    );

    // Teams through the console's client, each change audited on the right gateway.
    let team = console
        .create_team(
            &b.id,
            CreateTeam {
                name: " Platform ".into(),
                description: "infra".into(),
            },
            "key-1",
        )
        .await
        .unwrap();
    assert_eq!(team.name, "Platform");
    let replay = console
        .create_team(
            &b.id,
            CreateTeam {
                name: "Platform".into(),
                description: "infra".into(),
            },
            "key-1",
        )
        .await;
    assert_eq!(
        replay.unwrap().id,
        team.id,
        "a retried click creates nothing new"
    );
    let page = console.list_teams(&b.id, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(
        console
            .list_teams(&a.id, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let renamed = console
        .update_team(
            &b.id,
            &team.id,
            UpdateTeam {
                name: Some("Platform Eng".into()),
                description: None,
            },
            team.version,
        )
        .await
        .unwrap();
    assert_eq!(renamed.version, 2);
    let stale = console
        .update_team(
            &b.id,
            &team.id,
            UpdateTeam {
                name: Some("Old".into()),
                description: None,
            },
            1,
        )
        .await
        .unwrap_err();
    assert_eq!(stale.code(), "precondition_failed");
    let dup = console
        .create_team(
            &b.id,
            CreateTeam {
                name: "platform eng".into(),
                description: String::new(),
            },
            "key-2",
        )
        .await
        .unwrap_err();
    assert_eq!(dup.code(), "conflict");
    let invalid = console
        .create_team(
            &b.id,
            CreateTeam {
                name: "x".repeat(101),
                description: String::new(),
            },
            "key-3",
        )
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), "validation");
    console
        .delete_team(&b.id, &team.id, renamed.version)
        .await
        .unwrap();
    let audit = console.list_audit(&b.id, None).await.unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["team.delete", "team.update", "team.create"]);
    assert!(audit.items.iter().all(|e| e.target == team.id));
    assert!(
        console
            .list_audit(&a.id, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // The fleet overview: both reachable, then one stops answering.
    assert_eq!(
        console.run_due_checks().await,
        0,
        "just checked: nothing due"
    );
    console.refresh_fleet();
    assert_eq!(console.run_due_checks().await, 2);
    let fleet = console.fleet_overview().unwrap();
    assert!(
        fleet.iter().all(|e| e.state == Reachability::Reachable),
        "{fleet:?}"
    );
    east.stop();
    console.refresh_fleet();
    console.run_due_checks().await;
    let fleet = console.fleet_overview().unwrap();
    let east_entry = fleet.iter().find(|e| e.instance.id == a.id).unwrap();
    assert_eq!(east_entry.state, Reachability::Unreachable);
    assert_eq!(east_entry.failures, 1);
    assert_eq!(
        east_entry
            .last_report
            .as_ref()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .code,
        "connection_refused"
    );
    let wait =
        east_entry.next_check_at.unwrap() - east_entry.last_report.as_ref().unwrap().checked_at;
    assert_eq!(wait.num_seconds(), 5, "first retry after 5 s");

    // Health survives a restart of the console.
    drop(console);
    let console = Console::open(data.path(), vault.clone(), ClientOptions::default()).unwrap();
    let fleet = console.fleet_overview().unwrap();
    assert_eq!(
        fleet.iter().find(|e| e.instance.id == b.id).unwrap().state,
        Reachability::Reachable
    );

    // Editing keeps the stored token when none is given; a wrong token is a clear 401.
    let mut edit = input("West (edited)", &west.base, None);
    edit.environment = tollgate_console::models::Environment::Prod;
    let edited = console.update_instance(&b.id, edit).await.unwrap();
    assert_eq!(
        (edited.name.as_str(), edited.color.as_str()),
        ("West (edited)", "#d73a49")
    );
    assert!(console.test_connection(&b.id).await.unwrap().ok);
    let wrong = input(
        "West (edited)",
        &west.base,
        Some("tga_01jabcdefghjkmnpqrstvwxyz0_wrong"),
    );
    console.update_instance(&b.id, wrong).await.unwrap();
    let report = console.test_connection(&b.id).await.unwrap();
    assert_eq!(report.error.unwrap().code, "unauthorized");

    // Removing an instance removes its keyring entry.
    console.remove_instance(&b.id).await.unwrap();
    assert!(vault.get(&b.id, ADMIN_TOKEN).unwrap().is_none());
    assert_eq!(console.list_instances().unwrap().len(), 1);
    assert_eq!(
        console.remove_instance(&b.id).await.unwrap_err().code(),
        "not_found"
    );
    console.remove_instance(&a.id).await.unwrap();
    assert!(vault.get(&a.id, ADMIN_TOKEN).unwrap().is_none());
}

/// An instance of two nodes on one PostgreSQL database: the fleet's check
/// reports both up and which leads the jobs; the instance's node list names
/// each; a node that stops is reported stale once its heartbeat is 15 s old.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_of_two_nodes_reports_each_and_its_health() {
    let one = Gateway::start_on_postgres("cluster");
    let mut two = one.another_node("cluster");
    let data = tempfile::tempdir().unwrap();
    let console = Console::open(data.path(), test_vault(), ClientOptions::default()).unwrap();
    let id = console
        .add_instance(input("Cluster", &one.base, Some(&one.token)))
        .await
        .unwrap()
        .id;

    // The leader is known from its next heartbeat (every 5 s).
    let report = poll(
        Duration::from_secs(20),
        "both nodes up, one leading",
        async || {
            let report = console.test_connection(&id).await.unwrap();
            let nodes = report.nodes.clone()?;
            (nodes.up == 2 && nodes.leader.is_some()).then_some(report)
        },
    )
    .await;
    let nodes = report.nodes.unwrap();
    assert_eq!(nodes.stale, 0);
    assert!([&one.base, &two.base].contains(&&nodes.leader.unwrap()));
    // The fleet shows the same.
    let fleet = console.fleet_overview().unwrap();
    assert_eq!(
        fleet[0]
            .last_report
            .as_ref()
            .unwrap()
            .nodes
            .as_ref()
            .unwrap()
            .up,
        2
    );

    let listed = console.instance_nodes(&id).await.unwrap();
    let mut addresses: Vec<&str> = listed.iter().map(|n| n.address.as_str()).collect();
    addresses.sort_unstable();
    let mut expected = vec![one.base.as_str(), two.base.as_str()];
    expected.sort_unstable();
    assert_eq!(addresses, expected);
    assert_eq!(listed.iter().filter(|n| n.leads_jobs).count(), 1);
    assert!(listed.iter().all(|n| n.status == NodeStatus::Up));

    // The second node stops: stale once its heartbeat is 15 s old.
    two.terminate();
    let stopped = two.base.clone();
    let listed = poll(
        Duration::from_secs(30),
        "the stopped node stale",
        async || {
            let listed = console.instance_nodes(&id).await.unwrap();
            listed
                .iter()
                .any(|n| n.address == stopped && n.status == NodeStatus::Stale)
                .then_some(listed)
        },
    )
    .await;
    assert!(
        listed
            .iter()
            .any(|n| n.address == one.base && n.status == NodeStatus::Up)
    );
    let nodes = console.test_connection(&id).await.unwrap().nodes.unwrap();
    assert_eq!((nodes.up, nodes.stale), (1, 1));

    // A token without the read scope gets no node list, and the check still passes.
    let token = one.create_token("keys-only", "keys");
    let keys_only = console
        .add_instance(input("Keys only", &one.base, Some(&token)))
        .await
        .unwrap();
    let report = console.test_connection(&keys_only.id).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes, None);
}

/// Polls `check` (every 200 ms, up to `limit`) until it answers; panics
/// naming `what` after the limit.
async fn poll<T>(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < limit, "not {what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
