//! The console's local SQLite store: one file in the console's data directory,
//! migrated by embedded, ordered migrations; a newer schema is refused.

use std::path::Path;
use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension};
use rusqlite_migration::{M, Migrations};

use crate::error::ConsoleError;

static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(include_str!("../migrations/0001_instances.sql")),
        M::up(include_str!("../migrations/0002_saved_log_filters.sql")),
        M::up(include_str!("../migrations/0003_doctor.sql")),
        M::up(include_str!("../migrations/0004_alerts.sql")),
    ])
});

pub const DB_FILE: &str = "console.db";

/// The one place every connection is configured.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

pub fn open(data_dir: &Path) -> Result<Connection, ConsoleError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| ConsoleError::Storage(format!("cannot create {}: {e}", data_dir.display())))?;
    let mut conn = Connection::open(data_dir.join(DB_FILE))?;
    configure(&conn)?;
    MIGRATIONS.to_latest(&mut conn).map_err(|e| {
        ConsoleError::Storage(format!(
            "the console database could not be migrated (is it from a newer Tollgate?): {e}"
        ))
    })?;
    Ok(conn)
}

pub fn get_setting(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

pub fn set_setting(conn: &Connection, key: &str, value: Option<&str>) -> rusqlite::Result<()> {
    match value {
        Some(v) => conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, v],
        )?,
        None => conn.execute("DELETE FROM settings WHERE key = ?1", [key])?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid_and_newer_schemas_refused() {
        MIGRATIONS.validate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 42).unwrap();
        drop(conn);
        let err = open(dir.path()).unwrap_err();
        assert_eq!(err.code(), "storage");
    }
}
