//! The log explorer's saved filters on a real console database (SQLite file,
//! real keyring for the instances): saved, listed and deleted per instance;
//! names trimmed, bounded and unique per instance regardless of case (a
//! typed `conflict`); every bad input refused with the field it concerns;
//! kept across a restart; a stored filter that no longer passes the checks
//! listed with its problem (and still deletable); gone with its instance.
//! Also the export path check the explorer asks before exporting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use common::{input, test_vault};
use tollgate_console::client::ClientOptions;
use tollgate_console::logs::LogFilter;
use tollgate_console::logs::saved_filters::{SAVED_MAX, SaveLogFilter};
use tollgate_console::vault::Vault;
use tollgate_console::{Console, ConsoleError, IpcError};

fn open(dir: &std::path::Path, vault: &Vault) -> Arc<Console> {
    Console::open(dir, vault.clone(), ClientOptions::default()).unwrap()
}

fn save(name: &str, filter: LogFilter) -> SaveLogFilter {
    SaveLogFilter {
        name: name.to_owned(),
        filter,
        last_seconds: None,
    }
}

fn errors_4xx() -> LogFilter {
    LogFilter {
        status_class: Some(4),
        reason: Some("insufficient-funds".into()),
        latency_min_us: Some(1_000),
        latency_max_us: Some(2_000_000),
        cost_min: Some("0.001".into()),
        cost_max: Some("12.5".into()),
        text: Some("req_01* timeout".into()),
        consumer_id: Some("con_1".into()),
        ..LogFilter::default()
    }
}

/// The fields a validation error names.
fn fields(e: ConsoleError) -> Vec<String> {
    match e {
        ConsoleError::Validation(f) => f.into_iter().map(|f| f.field).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn saved_filters_on_a_real_database() {
    let data = tempfile::tempdir().unwrap();
    let vault = test_vault();
    let console = open(data.path(), &vault);
    let east = console
        .add_instance(input("East", "http://127.0.0.1:9", Some("tga_x_y")))
        .await
        .unwrap()
        .id;
    let west = console
        .add_instance(input("West", "http://127.0.0.1:9", Some("tga_x_y")))
        .await
        .unwrap()
        .id;
    assert!(console.list_saved_log_filters(&east).unwrap().is_empty());

    // Saved with its name trimmed; listed by name, case-insensitively.
    let refused = console
        .save_log_filter(&east, save("  Refused calls  ", errors_4xx()))
        .unwrap();
    assert_eq!(refused.name, "Refused calls");
    assert!(refused.id.starts_with("flt_"));
    assert_eq!(refused.instance_id, east);
    let window = LogFilter {
        from: Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()),
        to: Some(Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap()),
        model: Some("sim-small".into()),
        ..LogFilter::default()
    };
    console
        .save_log_filter(&east, save("a window", window.clone()))
        .unwrap();
    let recent = console
        .save_log_filter(
            &east,
            SaveLogFilter {
                name: "Last day".into(),
                filter: LogFilter {
                    api: Some("chat".into()),
                    ..LogFilter::default()
                },
                last_seconds: Some(86_400),
            },
        )
        .unwrap();
    let listed = console.list_saved_log_filters(&east).unwrap();
    let names: Vec<&str> = listed.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a window", "Last day", "Refused calls"]);
    assert_eq!(listed[0].filter, window);
    assert_eq!(listed[1].last_seconds, Some(86_400));
    assert_eq!(listed[2], refused);
    assert!(listed.iter().all(|f| f.problem.is_none()));

    // Unique per instance, ignoring case: a typed conflict. Another instance may use the name.
    let taken = console
        .save_log_filter(&east, save("REFUSED CALLS", LogFilter::default()))
        .unwrap_err();
    assert_eq!(taken.code(), "conflict");
    let ipc = IpcError::from(taken);
    assert_eq!(ipc.code, "conflict");
    assert!(ipc.message.contains("Refused calls"), "{}", ipc.message);
    console
        .save_log_filter(&west, save("Refused calls", LogFilter::default()))
        .unwrap();
    assert_eq!(console.list_saved_log_filters(&west).unwrap().len(), 1);

    // Bad names.
    for bad in ["", "   ", "tab\there", "line\nbreak"] {
        let e = console
            .save_log_filter(&east, save(bad, LogFilter::default()))
            .unwrap_err();
        assert_eq!(fields(e), ["name"], "{bad:?}");
    }
    let long = "x".repeat(81);
    assert_eq!(
        fields(
            console
                .save_log_filter(&east, save(&long, LogFilter::default()))
                .unwrap_err()
        ),
        ["name"]
    );
    // 80 characters (not bytes) are fine.
    console
        .save_log_filter(&east, save(&"é".repeat(80), LogFilter::default()))
        .unwrap();

    // Bad filters: every problem, on its field, together with the name's.
    let bad = LogFilter {
        from: window.to,
        to: window.from,
        status_class: Some(9),
        latency_min_us: Some(-1),
        cost_min: Some("abc".into()),
        cost_max: Some("1.0000001".into()),
        ..LogFilter::default()
    };
    let mut got = fields(console.save_log_filter(&east, save("", bad)).unwrap_err());
    got.sort();
    assert_eq!(
        got,
        [
            "filter.cost_max",
            "filter.cost_min",
            "filter.from",
            "filter.latency_min_us",
            "filter.status_class",
            "name",
        ]
    );
    let inverted = LogFilter {
        latency_min_us: Some(5),
        latency_max_us: Some(4),
        cost_min: Some("2".into()),
        cost_max: Some("1".into()),
        ..LogFilter::default()
    };
    let mut got = fields(
        console
            .save_log_filter(&east, save("x", inverted))
            .unwrap_err(),
    );
    got.sort();
    assert_eq!(got, ["filter.cost_max", "filter.latency_max_us"]);
    // A relative range: at least a minute, and not with an absolute one.
    for (last, filter) in [
        (59, LogFilter::default()),
        (-5, LogFilter::default()),
        (i64::MAX, LogFilter::default()),
        (3_600, window.clone()),
    ] {
        let e = console
            .save_log_filter(
                &east,
                SaveLogFilter {
                    name: "range".into(),
                    filter,
                    last_seconds: Some(last),
                },
            )
            .unwrap_err();
        assert_eq!(fields(e), ["last_seconds"], "{last}");
    }
    // What crosses IPC is read strictly: unknown fields are refused.
    assert!(
        serde_json::from_str::<SaveLogFilter>(r#"{"name":"a","filter":{},"owner":"x"}"#).is_err()
    );
    assert!(
        serde_json::from_str::<SaveLogFilter>(r#"{"name":"a","filter":{"colour":"red"}}"#).is_err()
    );
    assert!(serde_json::from_str::<SaveLogFilter>(r#"{"name":"a"}"#).is_err());

    // Unknown instances and filters.
    let e = console
        .save_log_filter("ins_nope", save("x", LogFilter::default()))
        .unwrap_err();
    assert_eq!(e.code(), "not_found");
    assert_eq!(
        console
            .list_saved_log_filters("ins_nope")
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert_eq!(
        console
            .delete_saved_log_filter(&east, "flt_nope")
            .unwrap_err()
            .code(),
        "not_found"
    );
    // A filter is deleted through its own instance only.
    assert_eq!(
        console
            .delete_saved_log_filter(&west, &recent.id)
            .unwrap_err()
            .code(),
        "not_found"
    );
    console.delete_saved_log_filter(&east, &recent.id).unwrap();
    assert_eq!(
        console
            .delete_saved_log_filter(&east, &recent.id)
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert_eq!(console.list_saved_log_filters(&east).unwrap().len(), 3);

    // Kept across a restart (the same file, migrated once).
    drop(console);
    let console = open(data.path(), &vault);
    let listed = console.list_saved_log_filters(&east).unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|f| f == &refused));

    // A row damaged outside the console is listed with its problem, never
    // applied, and can still be deleted.
    let db = rusqlite::Connection::open(data.path().join("console.db")).unwrap();
    db.execute(
        "UPDATE saved_log_filters SET filter = '{\"status_class\": 9}' WHERE id = ?1",
        [&refused.id],
    )
    .unwrap();
    db.execute(
        "UPDATE saved_log_filters SET filter = 'not json' WHERE name = 'a window'",
        [],
    )
    .unwrap();
    let listed = console.list_saved_log_filters(&east).unwrap();
    let damaged: Vec<_> = listed.iter().filter(|f| f.problem.is_some()).collect();
    assert_eq!(damaged.len(), 2);
    for f in &damaged {
        assert_eq!(f.filter, LogFilter::default());
    }
    let problem = listed
        .iter()
        .find(|f| f.id == refused.id)
        .unwrap()
        .problem
        .clone()
        .unwrap();
    assert!(problem.contains("filter.status_class"), "{problem}");
    console.delete_saved_log_filter(&east, &refused.id).unwrap();

    // At most SAVED_MAX per instance.
    let have = console.list_saved_log_filters(&west).unwrap().len();
    for i in have..SAVED_MAX {
        console
            .save_log_filter(&west, save(&format!("f{i}"), LogFilter::default()))
            .unwrap();
    }
    let e = console
        .save_log_filter(&west, save("one too many", LogFilter::default()))
        .unwrap_err();
    assert_eq!(e.code(), "limit_reached");

    // Removing an instance removes its saved filters.
    console.remove_instance(&west).await.unwrap();
    let left: i64 = db
        .query_row(
            "SELECT count(*) FROM saved_log_filters WHERE instance_id = ?1",
            [&west],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(console.list_saved_log_filters(&east).unwrap().len(), 2);
    console.remove_instance(&east).await.unwrap();
}

#[tokio::test]
async fn export_paths_are_checked_before_exporting() {
    let data = tempfile::tempdir().unwrap();
    let console = open(data.path(), &test_vault());
    let target = data.path().join("calls.csv");
    let fresh = console
        .check_log_export_path(&format!("  {}  ", target.display()))
        .unwrap();
    assert_eq!(fresh.path, target.display().to_string());
    assert!(!fresh.exists);
    std::fs::write(&target, "old").unwrap();
    assert!(
        console
            .check_log_export_path(&target.display().to_string())
            .unwrap()
            .exists
    );
    for bad in [
        String::new(),
        "calls.csv".into(),
        "/no/such/folder/calls.csv".into(),
        data.path().display().to_string(),
    ] {
        let e = console.check_log_export_path(&bad).unwrap_err();
        assert_eq!(fields(e), ["path"], "{bad:?}");
    }
    // The default folder, when there is one, is absolute and exists.
    if let Some(dir) = console.log_export_dir() {
        assert!(std::path::Path::new(&dir).is_absolute() && std::path::Path::new(&dir).is_dir());
    }
}
