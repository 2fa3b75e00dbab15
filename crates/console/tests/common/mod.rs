//! Real `tollgated` processes for the console's tests, and a vault whose
//! entries are kept apart from any real ones.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod admin;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use tollgate_console::Console;
use tollgate_console::client::ClientOptions;
use tollgate_console::models::{Environment, InstanceInput};
use tollgate_console::sensitive::Sensitive;
use tollgate_console::vault::Vault;

/// The gateway binary built beside this test (`cargo build -p tollgate-gateway`).
pub fn tollgated_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("tollgated");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p tollgate-gateway` first",
        bin.display()
    );
    bin
}

pub struct Gateway {
    child: Child,
    pub base: String,
    pub token: String,
    /// The gateway's data directory (removed on drop only when it made it).
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Gateway {
    pub fn start(name: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Gateway::start_in(name, dir.path(), "127.0.0.1:0");
        gw._dir = Some(dir);
        gw
    }

    /// A gateway with these TOML settings (e.g. `renewal_interval_secs = 1`).
    pub fn start_configured(name: &str, settings: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tollgate.toml");
        std::fs::write(&config, settings).unwrap();
        let mut gw = Gateway::launch(name, dir.path(), "127.0.0.1:0", Some(&config));
        gw._dir = Some(dir);
        gw
    }

    /// A gateway on a PostgreSQL database of its own, whatever store the
    /// suite runs on (for instances of several nodes).
    pub fn start_on_postgres(name: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(tollgate_test_postgres::DATABASE_FILE),
            tollgate_test_postgres::database(),
        )
        .unwrap();
        let mut gw = Gateway::start_in(name, dir.path(), "127.0.0.1:0");
        gw._dir = Some(dir);
        gw
    }

    /// Another node of this gateway: the same database, the encryption key
    /// the nodes share, the same admin token.
    pub fn another_node(&self, name: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        for file in [tollgate_test_postgres::DATABASE_FILE, "encryption.key"] {
            std::fs::copy(self.data_dir.join(file), dir.path().join(file)).unwrap();
        }
        // The token is the first node's: write it where `launch` reads it.
        std::fs::write(dir.path().join("bootstrap-admin-token"), &self.token).unwrap();
        let mut gw = Gateway::launch(name, dir.path(), "127.0.0.1:0", None);
        gw._dir = Some(dir);
        gw
    }

    /// A gateway on `data_dir` (kept), listening on `listen`: started again
    /// on the same directory and address, it is the same gateway restarted.
    pub fn start_in(name: &str, data_dir: &std::path::Path, listen: &str) -> Gateway {
        Gateway::launch(name, data_dir, listen, None)
    }

    fn launch(
        name: &str,
        dir: &std::path::Path,
        listen: &str,
        config: Option<&std::path::Path>,
    ) -> Gateway {
        let mut command = Command::new(tollgated_bin());
        // On PostgreSQL when the suite runs there (`TOLLGATE_TEST_STORE=postgres`).
        if let Some(url) = tollgate_test_postgres::database_for(dir) {
            command.env("TOLLGATE_DATABASE_URL", url);
        }
        if let Some(config) = config {
            command.env("TOLLGATE_CONFIG", config);
        }
        let mut child = command
            .args(["serve", "--listen", listen, "--name", name, "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("tollgated exited early").unwrap();
            if let Some(url) = line.strip_prefix("tollgated listening on ") {
                break url.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(dir.join("bootstrap-admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Gateway {
            child,
            base,
            token,
            data_dir: dir.to_owned(),
            _dir: None,
        }
    }

    /// A new admin token with `scopes` (comma-separated), made with
    /// `tollgated admin-token create` on the gateway's store.
    pub fn create_token(&self, name: &str, scopes: &str) -> String {
        let mut command = Command::new(tollgated_bin());
        if let Some(url) = tollgate_test_postgres::database_for(&self.data_dir) {
            command.env("TOLLGATE_DATABASE_URL", url);
        }
        let out = command
            .args([
                "admin-token",
                "create",
                "--name",
                name,
                "--scopes",
                scopes,
                "--data-dir",
            ])
            .arg(&self.data_dir)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// SIGTERM, and waits: the gateway drains and stores what it holds.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A vault under a service name of its own, so tests never meet real entries.
pub fn test_vault() -> Vault {
    Vault::new(&format!(
        "tollgate-test-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ))
}

pub fn input(name: &str, base_url: &str, token: Option<&str>) -> InstanceInput {
    InstanceInput {
        name: name.to_owned(),
        base_url: base_url.to_owned(),
        environment: Environment::Dev,
        color: None,
        ca_cert_pem: None,
        tls_verify: true,
        admin_token: token.map(|t| Sensitive::new(t.to_owned())),
    }
}

/// A console in a fresh data directory (kept alive by the returned guard)
/// with `gw` added as the instance `name`; answers the instance's id.
pub async fn console_with(gw: &Gateway, name: &str) -> (Arc<Console>, tempfile::TempDir, String) {
    let data = tempfile::tempdir().unwrap();
    let console = Console::open(data.path(), test_vault(), ClientOptions::default()).unwrap();
    let id = console
        .add_instance(input(name, &gw.base, Some(&gw.token)))
        .await
        .unwrap()
        .id;
    (console, data, id)
}
