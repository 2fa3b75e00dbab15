//! Starts real `tollgated` processes on loopback for the tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod nginx;
pub mod routed;
pub mod stripe;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgated");

/// On PostgreSQL when the suite runs there (`TOLLGATE_TEST_STORE=postgres`).
pub use tollgate_test_postgres::database_for as database_url;

/// Whether `needle` is anywhere in what the gateway of `dir` stored: the
/// SQLite files, or a dump of its PostgreSQL database (binary columns appear
/// there in hex, so that form is searched too).
pub fn stored_holds(dir: &Path, needle: &[u8]) -> bool {
    let haystacks: Vec<Vec<u8>> = match database_url(dir) {
        None => ["tollgate.db", "tollgate.db-wal"]
            .iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap_or_default())
            .collect(),
        Some(url) => {
            let out = Command::new(tollgate_test_postgres::bin_dir().join("pg_dump"))
                .args(["--data-only", &url])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            vec![out.stdout]
        }
    };
    let hex: Vec<u8> = needle
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect();
    haystacks.iter().any(|h| {
        h.windows(needle.len()).any(|w| w == needle)
            || h.windows(hex.len()).any(|w| w == hex.as_slice())
    })
}

pub struct Gateway {
    pub child: Child,
    pub base: String,
    /// Where `/metrics` is served without a token, when `metrics_listen` is set.
    pub metrics_url: Option<String>,
    pub token: String,
    pub dir: PathBuf,
    /// The arguments it was started with beyond the usual (another node
    /// starts with the same).
    extra: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Gateway {
    pub fn start() -> Gateway {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut gw = Gateway::start_in(&dir);
        gw._tmp = Some(tmp);
        gw
    }

    /// Starts on a PostgreSQL database of its own, whatever store the suite
    /// runs on (for tests of several nodes).
    pub fn start_on_postgres() -> Gateway {
        Gateway::start_on_postgres_with("")
    }

    /// On PostgreSQL, with extra settings (TOML lines) in a settings file
    /// that other nodes share.
    pub fn start_on_postgres_with(settings: &str) -> Gateway {
        Gateway::start_on_database(&tollgate_test_postgres::database(), settings)
    }

    /// On the PostgreSQL database `url`, with extra settings as above.
    pub fn start_on_database(url: &str, settings: &str) -> Gateway {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(tollgate_test_postgres::DATABASE_FILE), url).unwrap();
        let config = tmp.path().join("tollgated.toml");
        std::fs::write(&config, settings).unwrap();
        let mut gw = Gateway::spawn(&dir, &["--config", config.to_str().unwrap()]);
        gw._tmp = Some(tmp);
        gw
    }

    /// Another node of this gateway (on PostgreSQL): a data directory of
    /// its own holding the encryption key the nodes share, the same database,
    /// the same admin token.
    pub fn another_node(&self) -> Gateway {
        self.another_node_with_env(&[])
    }

    /// [`Gateway::another_node`] with extra environment variables.
    pub fn another_node_with_env(&self, env: &[(&str, &str)]) -> Gateway {
        let url = database_url(&self.dir).expect("several nodes need PostgreSQL");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(tollgate_test_postgres::DATABASE_FILE), url).unwrap();
        std::fs::copy(self.dir.join("encryption.key"), dir.join("encryption.key")).unwrap();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let mut node = Gateway::launch(&dir, &extra, env, Some(self.token.clone()));
        node._tmp = Some(tmp);
        node
    }

    /// Starts with extra settings (TOML lines) in a settings file.
    pub fn start_with(settings: &str) -> Gateway {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let config = tmp.path().join("tollgated.toml");
        std::fs::write(&config, settings).unwrap();
        let mut gw = Gateway::spawn(&dir, &["--config", config.to_str().unwrap()]);
        gw._tmp = Some(tmp);
        gw
    }

    /// Starts on an existing (or new) data directory.
    pub fn start_in(dir: &Path) -> Gateway {
        Gateway::spawn(dir, &[])
    }

    fn spawn(dir: &Path, extra: &[&str]) -> Gateway {
        Gateway::spawn_env(dir, extra, &[])
    }

    /// Starts with extra arguments and environment variables.
    pub fn spawn_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
        Gateway::launch(dir, extra, env, None)
    }

    /// Starts `tollgated`; its admin token is `token`, or else the bootstrap
    /// token it wrote in `dir`.
    fn launch(dir: &Path, extra: &[&str], env: &[(&str, &str)], token: Option<String>) -> Gateway {
        Gateway::launch_at("127.0.0.1:0", dir, extra, env, token)
    }

    fn launch_at(
        listen: &str,
        dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        token: Option<String>,
    ) -> Gateway {
        let mut command = Command::new(BIN);
        if let Some(url) = database_url(dir) {
            command.env("TOLLGATE_DATABASE_URL", url);
        }
        let mut child = command
            .envs(env.iter().copied())
            .args([
                "serve",
                "--listen",
                listen,
                "--name",
                "test-gw",
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics_url = None;
        let base = loop {
            let line = lines
                .next()
                .expect("tollgated exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("tollgated metrics on ") {
                metrics_url = Some(url.to_owned());
            }
            if let Some(url) = line.strip_prefix("tollgated listening on ") {
                break url.to_owned();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let token = token.unwrap_or_else(|| {
            std::fs::read_to_string(dir.join("bootstrap-admin-token"))
                .unwrap()
                .trim()
                .to_owned()
        });
        Gateway {
            child,
            base,
            metrics_url,
            token,
            dir: dir.to_owned(),
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            _tmp: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs `tollgated admin-token …` against this gateway's data directory.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = Command::new(BIN);
        if let Some(url) = database_url(&self.dir) {
            command.env("TOLLGATE_DATABASE_URL", url);
        }
        let out = command
            .arg("admin-token")
            .args(args)
            .arg("--data-dir")
            .arg(&self.dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    }

    pub fn create_token(&self, name: &str, scopes: &str) -> String {
        let (ok, stdout, stderr) = self.cli(&["create", "--name", name, "--scopes", scopes]);
        assert!(ok, "{stderr}");
        stdout
    }

    /// Kills the process (SIGKILL: nothing is given back or flushed) and
    /// starts it again on the same address, directory and settings.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let listen = self.base.trim_start_matches("http://").to_owned();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let mut again =
            Gateway::launch_at(&listen, &self.dir, &extra, &[], Some(self.token.clone()));
        std::mem::swap(&mut self.child, &mut again.child);
        // `again` now holds the dead process; dropping it reaps nothing more.
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tollgated did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// A management request as the admin token; see [`Gateway::send_with`].
    pub async fn send(&self, method: &str, path: &str, body: Value, status: StatusCode) -> Value {
        self.send_with(&self.token, method, path, body, &[], status)
            .await
    }

    /// A management request as `token`; see [`Gateway::send_with`].
    pub async fn send_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Value,
        status: StatusCode,
    ) -> Value {
        self.send_with(token, method, path, body, &[], status).await
    }

    /// A management request as `token` with `body` as JSON (none when null)
    /// and extra `headers`: asserts the answer's status and returns its JSON
    /// (null when it has none).
    pub async fn send_with(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
        status: StatusCode,
    ) -> Value {
        let mut req = client()
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(token);
        if !body.is_null() {
            req = req.json(&body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }
}

impl Gateway {
    /// A consumer of `team` with a key, subscribed to a new plan: `plan`'s
    /// fields over a free monthly plan named after the consumer that charges
    /// its wallet. Returns (consumer id, key secret).
    pub async fn subscribed_consumer(
        &self,
        team: &str,
        name: &str,
        plan: Value,
    ) -> (String, String) {
        let mut spec = serde_json::json!({"name": format!("Plan {name}"), "currency": "USD",
            "price": "0", "period": "month", "included_credits": "0",
            "overage": "charge_wallet", "apis": ["chat"]});
        spec.as_object_mut()
            .unwrap()
            .extend(plan.as_object().unwrap().clone());
        let plan = self
            .send("POST", "/admin/v1/plans", spec, StatusCode::CREATED)
            .await;
        let consumer = self
            .send(
                "POST",
                "/admin/v1/consumers",
                serde_json::json!({"team_id": team, "name": name}),
                StatusCode::CREATED,
            )
            .await;
        let id = consumer["id"].as_str().unwrap().to_owned();
        let key = self
            .send(
                "POST",
                &format!("/admin/v1/consumers/{id}/keys"),
                serde_json::json!({"name": "k"}),
                StatusCode::CREATED,
            )
            .await;
        self.send(
            "POST",
            "/admin/v1/subscriptions",
            serde_json::json!({"consumer_id": id, "plan_id": plan["id"]}),
            StatusCode::CREATED,
        )
        .await;
        (id, key["secret"].as_str().unwrap().to_owned())
    }

    /// Adds `amount` (a decimal string) to a consumer's USD wallet.
    pub async fn top_up(&self, consumer: &str, amount: &str) {
        let key = format!("top-up-{}", unique());
        self.send_with(
            &self.token,
            "POST",
            &format!("/admin/v1/consumers/{consumer}/wallets/USD/entries"),
            serde_json::json!({"kind": "top_up", "amount": amount}),
            &[("Idempotency-Key", &key)],
            StatusCode::CREATED,
        )
        .await;
    }
}

/// A number no other call in this process gets.
pub fn unique() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 64
        | std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
}

/// Asserts an answer's status and returns its JSON (null when it has none).
pub async fn expect(resp: reqwest::Response, status: StatusCode) -> Value {
    let got = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// The `key` of each item of a JSON list.
pub fn pluck<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap())
        .collect()
}

/// The fields a validation problem names, in order.
pub fn fields(problem: &Value) -> Vec<&str> {
    pluck(&problem["errors"], "field")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
