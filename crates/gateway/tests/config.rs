//! Settings from a TOML file and environment variables, on the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::BIN;

#[tokio::test]
async fn file_then_environment_then_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tollgated.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\ninstance_name = \"from-file\"\npublic_url = \"https://gw.example.com/\"\nlog_format = \"json\"\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("TOLLGATE_INSTANCE_NAME", "from-env")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.strip_prefix("tollgated listening on ") {
            break url.to_owned();
        }
    };
    let token = std::fs::read_to_string(tmp.path().join("data/bootstrap-admin-token")).unwrap();
    let http = common::client();
    let info: serde_json::Value = http
        .get(format!("{base}/admin/v1/info"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info["name"], "from-env",
        "the environment overrides the file"
    );
    let problem: serde_json::Value = http
        .get(format!("{base}/admin/v1/teams"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        problem["type"], "https://gw.example.com/problems/unauthorized",
        "public_url from the file"
    );
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let first = log
        .lines()
        .find(|l| l.contains("tollgated listening"))
        .expect("a log line");
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "json logs: {first}"
    );
    assert!(
        !log.contains(token.trim()),
        "the token never reaches the log"
    );
}

#[test]
fn bad_settings_stop_the_start_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("bad.toml");
    std::fs::write(
        &config,
        "data_dir = \"/tmp/x\"\nlisten_adress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_adress"), "{err}");

    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("TOLLGATE_DATA_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_dir"));

    let out = Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            "/tmp/x",
            "--listen",
            "not-an-address",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));

    for bad in ["idle_timeout_secs = 0", "idle_timeout_secs = 3601"] {
        std::fs::write(&config, format!("data_dir = \"/tmp/x\"\n{bad}\n")).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("idle_timeout_secs") && err.contains("1 to 3600"),
            "{err}"
        );
    }
}

#[test]
fn a_bad_database_url_stops_the_start_saying_which_part_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (
            "mysql://u:pw-s3cret@127.0.0.1/x".to_owned(),
            "invalid setting `database_url`".to_owned(),
        ),
        (
            format!("postgres://u:pw-s3cret@127.0.0.1:{closed}/x"),
            format!("cannot reach PostgreSQL at 127.0.0.1:{closed}"),
        ),
    ];
    for (url, expected) in cases {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path())
            .env("TOLLGATE_DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&expected), "{url}: {err}");
        assert!(!err.contains("pw-s3cret"), "the password leaked: {err}");
        // Nothing was served and no SQLite store was made instead.
        assert!(!tmp.path().join("tollgate.db").exists());
    }
}
