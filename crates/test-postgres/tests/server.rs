//! The harness itself: a server starts, gives fresh databases, keeps its
//! data across a restart, and runs as an unprivileged user.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_test_postgres::{PgServer, database, psql};

#[test]
fn a_throwaway_server_keeps_its_data_across_a_restart() {
    let mut server = PgServer::start();
    let url = server.url("postgres");
    psql(&url, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)");
    server.restart();
    assert_eq!(psql(&url, "SELECT v FROM t"), "42");
    // PostgreSQL never runs as root (it would refuse to).
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid().unwrap())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_ne!(uid.split_whitespace().nth(1), Some("0"), "{uid}");
    let port = server.port();
    server.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn each_test_gets_its_own_empty_database() {
    let (a, b) = (database(), database());
    assert_ne!(a, b);
    psql(&a, "CREATE TABLE only_in_a (v int)");
    assert_eq!(
        psql(
            &b,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
        ),
        "0"
    );
}
