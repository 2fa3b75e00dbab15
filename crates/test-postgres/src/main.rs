//! `tollgate-test-postgres URL_FILE`: starts one throwaway PostgreSQL server
//! for a whole test run (`scripts/test.sh`), writes its admin URL to
//! `URL_FILE` once it accepts connections, and stops it when that file is
//! removed or when the process that started it exits.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use tollgate_test_postgres::PgServer;

fn main() {
    let file = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: tollgate-test-postgres URL_FILE"),
    );
    let parent = parent_pid();
    let server = PgServer::start();
    let url = server.url("postgres");
    // Written whole, then renamed: a reader never sees half a URL.
    let partial = file.with_extension("partial");
    std::fs::write(&partial, &url).expect("writing the URL");
    std::fs::rename(&partial, &file).expect("publishing the URL");
    eprintln!("test PostgreSQL server at {url}");
    while file.exists() && parent_pid() == parent {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
}

/// The parent's pid (1 once it has exited and this process was adopted).
fn parent_pid() -> u32 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces: fields resume after its ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(1)
}
