//! A real PostgreSQL server for tests: a throwaway cluster made with
//! `initdb` in a temporary directory and run by `postgres` on a free loopback
//! port, as an unprivileged user (PostgreSQL refuses to run as root; under
//! root the cluster belongs to the `postgres` system user Debian's package
//! creates). Trust authentication on loopback only, `fsync` off: data that
//! only lives for a test.
//!
//! Tests take a fresh database with [`database`]: on the server named by
//! `TOLLGATE_TEST_POSTGRES` (an admin URL; `scripts/test.sh` starts one
//! server for the whole run), else on a server this process starts once.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The user every cluster admits (trust, loopback).
pub const USER: &str = "tollgate";
/// Names the admin URL of a running server to make test databases on.
pub const SERVER_ENV: &str = "TOLLGATE_TEST_POSTGRES";

/// A running throwaway server; stopped (fast shutdown) and deleted on drop.
pub struct PgServer {
    child: Option<Child>,
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// Makes a cluster and starts it; panics with what failed (a missing
    /// PostgreSQL says how to install it).
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("tollgate-pg.")
            .tempdir()
            .expect("a temporary directory");
        let owner = unprivileged_owner();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("giving the cluster's directory to the postgres user");
        }
        let data = dir.path().join("data");
        let out = as_owner(Command::new(bin.join("initdb")), owner)
            .args([
                "--no-sync",
                "--no-instructions",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-U",
                USER,
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = PgServer {
            child: None,
            bin,
            data,
            port: 0,
            owner,
            _dir: dir,
        };
        server.port = free_port();
        server.run();
        server
    }

    fn run(&mut self) {
        let socket_dir = self
            .data
            .parent()
            .expect("the cluster's directory")
            .to_owned();
        let log = std::fs::File::create(socket_dir.join("server.log")).expect("the server's log");
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(socket_dir.join("server.log"), Some(uid), Some(gid))
                .expect("giving the log to the postgres user");
        }
        let child = as_owner(Command::new(self.bin.join("postgres")), self.owner)
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&socket_dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        self.wait_ready(&socket_dir);
    }

    fn wait_ready(&mut self, socket_dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log =
                    std::fs::read_to_string(socket_dir.join("server.log")).unwrap_or_default();
                panic!("postgres exited ({status}) while starting:\n{log}");
            }
            // Accepting a connection is not enough (it refuses logins while
            // it recovers): ask the way psql would.
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    USER,
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Statics are never dropped: a small watcher stops the server and
    /// deletes its directory once this process has exited.
    fn stop_when_this_process_exits(&self) {
        let (Some(server), Some(dir)) = (self.pid(), self.data.parent()) else {
            return;
        };
        let script = "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; \
                      kill -INT \"$2\"; while kill -0 \"$2\" 2>/dev/null; do sleep 0.1; done; rm -rf \"$3\"";
        let _ = Command::new("sh")
            .args(["-c", script, "watcher"])
            .arg(std::process::id().to_string())
            .arg(server.to_string())
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// The server process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server as an administrator's fast shutdown does (SIGINT:
    /// sessions are cut, transactions in flight roll back), and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same port, with its data.
    pub fn restart(&mut self) {
        self.restart_after(Duration::ZERO);
    }

    /// Stops the server, leaves it down for `down`, and starts it again.
    pub fn restart_after(&mut self, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.run();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh, empty database for one test; answers its URL. The server is the
/// run's (`TOLLGATE_TEST_POSTGRES`) or one this process starts and keeps.
pub fn database() -> String {
    static OWN: OnceLock<(String, PgServerHandle)> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = match std::env::var(SERVER_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let (url, _) = OWN.get_or_init(|| {
                let server = PgServer::start();
                server.stop_when_this_process_exits();
                (
                    server.url("postgres"),
                    PgServerHandle(std::sync::Mutex::new(server)),
                )
            });
            url.clone()
        }
    };
    // Unique across the processes a test runner starts at once, and across
    // a process id used again later in the run.
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        since_epoch.as_nanos()
    );
    psql(&admin, &format!("CREATE DATABASE {name}"));
    with_database(&admin, &name)
}

/// `TOLLGATE_TEST_STORE=postgres` runs a suite's gateways on PostgreSQL.
pub const STORE_ENV: &str = "TOLLGATE_TEST_STORE";

/// The file, in a test gateway's data directory, naming its database; a
/// test that wants PostgreSQL whatever the suite runs on writes it first.
pub const DATABASE_FILE: &str = ".test-database-url";

/// The PostgreSQL database of the gateway whose data directory is `dir`: the
/// one its [`DATABASE_FILE`] names, or, when the suite runs on PostgreSQL
/// (`TOLLGATE_TEST_STORE=postgres`), a new one, remembered there so that a
/// gateway started again on the same directory finds the same state.
pub fn database_for(dir: &Path) -> Option<String> {
    let file = dir.join(DATABASE_FILE);
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Some(url);
    }
    if std::env::var(STORE_ENV).as_deref() != Ok("postgres") {
        return None;
    }
    std::fs::create_dir_all(dir).expect("the data directory");
    let url = database();
    std::fs::write(&file, &url).expect("remembering the database");
    Some(url)
}

/// Keeps this process's own server alive for every test of the process
/// (statics are never dropped: a watcher stops it when the process exits).
struct PgServerHandle(#[allow(dead_code)] std::sync::Mutex<PgServer>);

/// Runs one SQL statement with psql (the client Debian's package installs).
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(bin_dir().join("psql"))
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql `{sql}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{db}")
}

/// PostgreSQL's programs: `TOLLGATE_PG_BIN`, else the newest of Debian's
/// `/usr/lib/postgresql/*/bin`, else the PATH's.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TOLLGATE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists());
    on_path.unwrap_or_else(|| {
        panic!("PostgreSQL's server programs are not installed (apt-get install postgresql; scripts/setup.sh does)")
    })
}

/// Under root, the `postgres` system user and group; else none (run as self).
fn unprivileged_owner() -> Option<(u32, u32)> {
    let me = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    if me != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let entry = passwd.lines().find(|l| l.starts_with("postgres:")).expect(
        "running as root needs the postgres system user (apt-get install postgresql creates it)",
    );
    let fields: Vec<&str> = entry.split(':').collect();
    Some((
        fields[2].parse().expect("a uid"),
        fields[3].parse().expect("a gid"),
    ))
}

fn as_owner(mut command: Command, owner: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
        // Its own HOME and working directory: root's are not readable to it.
        command.env("HOME", "/tmp").current_dir("/tmp");
    }
    command
}

/// A port free on loopback now (the OS picks; a race with another process
/// taking it at once makes postgres fail to start, which says so).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("its address").port()
}
