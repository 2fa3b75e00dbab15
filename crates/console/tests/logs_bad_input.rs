//! Bad input from a gateway to the call-log sync, from
//! `broken_gateway_fixture` — a TEST FIXTURE: a small loopback server that
//! speaks just enough of the management API (`/admin/v1/info`,
//! `/admin/v1/logs/export`) to misbehave on cue: malformed lines,
//! duplicated and out-of-order seqs, a record sent again with other
//! content, a page cut mid-record or mid-transfer, no head header, HTML,
//! a log that goes back, another gateway at the same URL. Each is handled
//! and reported; nothing cached is lost or corrupted, and nothing valid is
//! skipped. Then a damaged cache file is found and rebuilt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, LazyLock, Mutex};

use chrono::{TimeZone, Utc};
use common::{input, test_vault};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tollgate_api::{CallLog, InstanceInfo, Scope, TokenIdentity};
use tollgate_console::Console;
use tollgate_console::client::ClientOptions;
use tollgate_console::logs::{LogFilter, SyncOptions};

/// How the fixture misbehaves on the next export.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Normal,
    /// The line of this seq is not JSON.
    MalformedAt(i64),
    /// Every line twice, pairs swapped, and three old records again.
    DuplicatesOutOfOrder,
    /// The record of this seq again, with another status.
    Conflict(i64),
    /// The body ends in the middle of this seq's line (a clean end).
    TruncatedAt(i64),
    /// A content length longer than what is sent before the connection closes.
    CutAt(i64),
    NoHead,
    Html,
}

struct State {
    log: Vec<CallLog>,
    mode: Mode,
    instance_id: String,
    exports: usize,
}

/// A day ago (whole seconds): recent enough for the cache's retention.
static BASE_US: LazyLock<i64> = LazyLock::new(|| (Utc::now().timestamp() - 86_400) * 1_000_000);

fn record(seq: i64) -> CallLog {
    CallLog {
        seq,
        id: format!("req_{seq:026}"),
        at: Utc.timestamp_micros(*BASE_US + seq * 1_000_000).unwrap(),
        api: "chat".into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        team_id: Some("team_1".into()),
        consumer_id: Some(format!("cons_{}", seq % 3)),
        key_id: None,
        key_prefix: None,
        model: Some("sim-small".into()),
        provider_id: None,
        provider_key: None,
        status: if seq % 5 == 0 { 402 } else { 200 },
        reason: (seq % 5 == 0).then(|| "insufficient-funds".into()),
        upstream_status: None,
        latency_us: 1_000 + seq,
        upstream_us: None,
        ttft_us: None,
        tokens_in: 2,
        tokens_out: 3,
        cost: if seq % 5 == 0 {
            "0.00".into()
        } else {
            "0.01".into()
        },
        currency: Some("USD".into()),
        client_ip: None,
        user_agent: None,
        error: None,
        request_body: None,
        response_body: None,
    }
}

fn line(l: &CallLog) -> String {
    format!("{}\n", serde_json::to_string(l).unwrap())
}

fn query_param(path: &str, name: &str) -> Option<i64> {
    path.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))?
        .parse()
        .ok()
}

/// The answer to one request: (status line, headers, body, declared length).
fn answer(state: &mut State, path: &str) -> (String, Vec<(String, String)>, String, usize) {
    if path.starts_with("/admin/v1/info") {
        let info = InstanceInfo {
            product: "tollgate".into(),
            instance_id: state.instance_id.clone(),
            name: "broken".into(),
            version: "0.0.0".into(),
            public_url: "http://127.0.0.1".into(),
            started_at: Utc::now(),
            uptime_seconds: 1,
            server_time: Utc::now(),
            features: vec![],
            token: TokenIdentity {
                id: "atk_1".into(),
                name: "t".into(),
                scopes: vec![Scope::Admin],
            },
        };
        let body = serde_json::to_string(&info).unwrap();
        let len = body.len();
        return (
            "200 OK".into(),
            vec![("content-type".into(), "application/json".into())],
            body,
            len,
        );
    }
    assert!(path.starts_with("/admin/v1/logs/export"), "{path}");
    state.exports += 1;
    let after = query_param(path, "after").unwrap_or(0);
    let limit = query_param(path, "limit").unwrap_or(50_000) as usize;
    let head = state.log.last().map_or(0, |l| l.seq);
    let page: Vec<CallLog> = state
        .log
        .iter()
        .filter(|l| l.seq > after)
        .take(limit)
        .cloned()
        .collect();
    let mut body = String::new();
    let mut declared = None;
    let mut content_type = "application/x-ndjson";
    let mut head_header = Some(head);
    match state.mode.clone() {
        Mode::Normal => page.iter().for_each(|l| body.push_str(&line(l))),
        Mode::MalformedAt(bad) => {
            for l in &page {
                if l.seq == bad {
                    body.push_str(&format!(
                        "{{\"seq\": {bad}, \"id\": \"req_broken\", \"at\": 17\n"
                    ));
                } else {
                    body.push_str(&line(l));
                }
            }
        }
        Mode::DuplicatesOutOfOrder => {
            for old in state.log.iter().filter(|l| l.seq <= after).rev().take(3) {
                body.push_str(&line(old));
            }
            for pair in page.chunks(2) {
                for l in pair.iter().rev() {
                    body.push_str(&line(l));
                    body.push_str(&line(l));
                }
            }
        }
        Mode::Conflict(seq) => {
            let mut changed = record(seq);
            changed.status = 500;
            body.push_str(&line(&changed));
            page.iter().for_each(|l| body.push_str(&line(l)));
        }
        Mode::TruncatedAt(seq) | Mode::CutAt(seq) => {
            for l in &page {
                let text = line(l);
                if l.seq == seq {
                    body.push_str(&text[..text.len() / 2]);
                    break;
                }
                body.push_str(&text);
            }
            if let Mode::CutAt(_) = state.mode {
                declared = Some(body.len() + 1_000);
            }
        }
        Mode::NoHead => {
            head_header = None;
            page.iter().for_each(|l| body.push_str(&line(l)));
        }
        Mode::Html => {
            content_type = "text/html";
            body.push_str("<html>maintenance</html>");
        }
    }
    let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
    if let Some(h) = head_header {
        headers.push(("x-tollgate-log-head".into(), h.to_string()));
    }
    let len = declared.unwrap_or(body.len());
    ("200 OK".into(), headers, body, len)
}

/// The fixture: answers each connection's one request from `state`.
async fn broken_gateway_fixture(state: Arc<Mutex<State>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
                let (status, headers, body, len) = answer(&mut state.lock().unwrap(), &path);
                let mut response =
                    format!("HTTP/1.1 {status}\r\ncontent-length: {len}\r\nconnection: close\r\n");
                for (name, value) in headers {
                    response.push_str(&format!("{name}: {value}\r\n"));
                }
                response.push_str("\r\n");
                response.push_str(&body);
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

async fn cached(console: &Console, id: &str) -> Vec<CallLog> {
    let mut page = console
        .log_page(id, LogFilter::default(), None, Some(1_000))
        .await
        .unwrap();
    assert!(page.next_before.is_none());
    page.items.reverse();
    page.items
}

fn seqs(records: &[CallLog]) -> Vec<i64> {
    records.iter().map(|r| r.seq).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_from_a_gateway_is_handled_reported_and_nothing_is_lost() {
    // Seqs with gaps, as a gateway's log may have.
    let log: Vec<CallLog> = (1..=50).map(|i| record(i * 2 + 1)).collect();
    let state = Arc::new(Mutex::new(State {
        log,
        mode: Mode::Normal,
        instance_id: "gw_first".into(),
        exports: 0,
    }));
    let url = broken_gateway_fixture(state.clone()).await;
    let data = tempfile::tempdir().unwrap();
    let console = Console::open(data.path(), test_vault(), ClientOptions::default()).unwrap();
    console.set_log_sync_options(SyncOptions {
        page_size: 20,
        batch_size: 7,
        ..SyncOptions::default()
    });
    let id = console
        .add_instance(input("Broken", &url, Some("tga_x_y")))
        .await
        .unwrap()
        .id;
    // The next export's mode, with the log grown to `upto` records.
    let set = |mode: Mode, upto: i64| {
        let mut s = state.lock().unwrap();
        s.mode = mode;
        let have = s.log.len() as i64;
        let extra: Vec<CallLog> = (have + 1..=upto).map(|i| record(i * 2 + 1)).collect();
        s.log.extend(extra);
    };
    let truth = |upto: i64| -> Vec<CallLog> { (1..=upto).map(|i| record(i * 2 + 1)).collect() };
    let kinds = |console: Arc<Console>, id: String| async move {
        console
            .log_sync_events(&id, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect::<Vec<_>>()
    };

    // A good gateway: everything, over three pages.
    let report = console.sync_logs(&id, |_| {}).await.unwrap();
    assert_eq!((report.inserted, report.pages), (50, 3));
    assert!(cached(&console, &id).await == truth(50));

    // A malformed line: what came before it is kept, the cursor stops
    // before it, the error is kept; once the gateway is right, nothing is missing.
    set(Mode::MalformedAt(56 * 2 + 1), 60);
    let e = console.sync_logs(&id, |_| {}).await.unwrap_err();
    assert_eq!(e.code(), "log_malformed_record", "{e}");
    assert!(e.to_string().contains("after seq 111"), "{e}");
    assert_eq!(seqs(&cached(&console, &id).await), seqs(&truth(55)));
    let info = console.log_cache_info(&id).await.unwrap();
    assert_eq!(info.last_seq, 111);
    assert_eq!(info.last_error.unwrap().code, "log_malformed_record");
    set(Mode::Normal, 60);
    console.sync_logs(&id, |_| {}).await.unwrap();
    assert!(cached(&console, &id).await == truth(60));
    assert!(
        console
            .log_cache_info(&id)
            .await
            .unwrap()
            .last_error
            .is_none()
    );

    // Duplicates (old records again, each line twice) and out-of-order
    // pairs: stored once each, every one of them, reported.
    set(Mode::DuplicatesOutOfOrder, 75);
    let report = console.sync_logs(&id, |_| {}).await.unwrap();
    assert_eq!(report.inserted, 15);
    assert!(report.duplicates >= 15 + 3, "{report:?}");
    assert!(report.out_of_order >= 5, "{report:?}");
    assert!(cached(&console, &id).await == truth(75));

    // A cached record sent again with other content: the cached one stays.
    set(Mode::Conflict(21), 77);
    let report = console.sync_logs(&id, |_| {}).await.unwrap();
    assert_eq!((report.inserted, report.conflicts), (2, 1));
    assert_eq!(console.log_record(&id, 21).await.unwrap(), record(21));

    // A page that ends in the middle of a record (cleanly, or with the
    // connection cut): the whole lines before it are kept; the next sync
    // resumes.
    set(Mode::TruncatedAt(81 * 2 + 1), 85);
    let e = console.sync_logs(&id, |_| {}).await.unwrap_err();
    assert_eq!(e.code(), "log_truncated", "{e}");
    assert_eq!(seqs(&cached(&console, &id).await), seqs(&truth(80)));
    set(Mode::CutAt(83 * 2 + 1), 85);
    let e = console.sync_logs(&id, |_| {}).await.unwrap_err();
    assert_eq!(e.code(), "network", "{e}");
    assert_eq!(seqs(&cached(&console, &id).await), seqs(&truth(82)));
    set(Mode::Normal, 85);
    console.sync_logs(&id, |_| {}).await.unwrap();
    assert!(cached(&console, &id).await == truth(85));

    // Not an export: no head header, or HTML. Nothing changes.
    set(Mode::NoHead, 90);
    let e = console.sync_logs(&id, |_| {}).await.unwrap_err();
    assert_eq!(e.code(), "log_malformed_page", "{e}");
    set(Mode::Html, 90);
    let e = console.sync_logs(&id, |_| {}).await.unwrap_err();
    assert_eq!(e.code(), "not_a_gateway", "{e}");
    assert!(cached(&console, &id).await == truth(85));

    // The gateway's log goes back (it was reset: seqs start over, the
    // head is behind the cursor): stopped, reported, the cache intact.
    {
        let mut s = state.lock().unwrap();
        s.mode = Mode::Normal;
        s.log = (1..=5).map(record).collect();
    }
    let e = console.sync_logs(&id, |_| {}).await.unwrap_err();
    assert_eq!(e.code(), "log_went_back", "{e}");
    let info = console.log_cache_info(&id).await.unwrap();
    assert_eq!((info.records, info.last_seq), (85, 171));
    assert!(cached(&console, &id).await == truth(85));

    // Another gateway behind the same URL: stopped too.
    state.lock().unwrap().instance_id = "gw_second".into();
    let e = console.sync_logs(&id, |_| {}).await.unwrap_err();
    assert_eq!(e.code(), "gateway_changed", "{e}");
    let events = kinds(console.clone(), id.clone()).await;
    for kind in [
        "gateway_changed",
        "log_went_back",
        "log_malformed_page",
        "log_truncated",
        "conflict",
        "out_of_order",
        "duplicate",
        "log_malformed_record",
    ] {
        assert!(events.iter().any(|k| k == kind), "{kind} in {events:?}");
    }

    // Rebuilt on request, the cache follows the new gateway's log.
    let info = console.rebuild_log_cache(&id).await.unwrap();
    assert_eq!((info.records, info.last_seq), (0, 0));
    let report = console.sync_logs(&id, |_| {}).await.unwrap();
    assert_eq!(report.inserted, 5);
    assert_eq!(seqs(&cached(&console, &id).await), [1, 2, 3, 4, 5]);
    assert!(state.lock().unwrap().exports > 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_cache_is_set_aside_and_rebuilt_from_the_gateway() {
    let state = Arc::new(Mutex::new(State {
        log: (1..=400).map(record).collect(),
        mode: Mode::Normal,
        instance_id: "gw_1".into(),
        exports: 0,
    }));
    let url = broken_gateway_fixture(state.clone()).await;
    let data = tempfile::tempdir().unwrap();
    let vault = test_vault();
    let console = Console::open(data.path(), vault.clone(), ClientOptions::default()).unwrap();
    let id = console
        .add_instance(input("Damaged", &url, Some("tga_x_y")))
        .await
        .unwrap()
        .id;
    console.sync_logs(&id, |_| {}).await.unwrap();
    assert_eq!(console.check_log_cache(&id).await.unwrap().detail, "ok");
    drop(console);
    let file = data.path().join("logs").join(format!("{id}.db"));
    let damaged = |offset: u64| {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&[0x5a; 4096]).unwrap();
    };
    let aside = || {
        std::fs::read_dir(data.path().join("logs"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".damaged-")
            })
            .count()
    };

    // Pages in the middle: the integrity check finds it (or the first
    // read does); the file goes aside and a new cache refills.
    damaged(3 * 4096);
    let console = Console::open(data.path(), vault.clone(), ClientOptions::default()).unwrap();
    // Found by the check, by the first read, or on opening: set aside.
    let check = console.check_log_cache(&id).await;
    assert_eq!(aside(), 1, "{check:?}");
    match check {
        Ok(check) => assert!(check.rebuilt || check.ok, "{check:?}"),
        Err(e) => assert_eq!(e.code(), "cache_corrupt", "{e}"),
    }
    assert_eq!(console.log_cache_info(&id).await.unwrap().records, 0);
    console.sync_logs(&id, |_| {}).await.unwrap();
    assert_eq!(cached(&console, &id).await.len(), 400);
    assert!(
        console
            .log_sync_events(&id, None)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "cache_rebuilt")
    );
    drop(console);

    // Not a database at all: found when it is opened.
    damaged(0);
    let console = Console::open(data.path(), vault, ClientOptions::default()).unwrap();
    assert_eq!(console.log_cache_info(&id).await.unwrap().records, 0);
    assert_eq!(aside(), 2);
    console.sync_logs(&id, |_| {}).await.unwrap();
    assert_eq!(console.check_log_cache(&id).await.unwrap().detail, "ok");
    assert_eq!(cached(&console, &id).await.len(), 400);
}
