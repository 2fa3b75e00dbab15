//! The vault against the real Secret Service (gnome-keyring under
//! dbus-run-session, see scripts/with-keyring.sh), and the console's behaviour
//! when no keyring is available.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{input, test_vault};
use tollgate_console::Console;
use tollgate_console::client::ClientOptions;
use tollgate_console::sensitive::Sensitive;
use tollgate_console::vault::{ADMIN_TOKEN, Vault};

#[test]
fn stores_reads_and_deletes_secrets_in_the_secret_service() {
    let vault = test_vault();
    vault.check().unwrap();
    assert!(
        vault.get("ins_a", ADMIN_TOKEN).unwrap().is_none(),
        "missing entry is Ok(None)"
    );
    vault
        .set("ins_a", ADMIN_TOKEN, &Sensitive::new("tga_first".into()))
        .unwrap();
    vault
        .set("ins_a", ADMIN_TOKEN, &Sensitive::new("tga_second".into()))
        .unwrap();
    assert_eq!(
        vault.get("ins_a", ADMIN_TOKEN).unwrap().unwrap().expose(),
        "tga_second"
    );
    assert!(vault.get("ins_b", ADMIN_TOKEN).unwrap().is_none());

    // The entry is a real Secret Service item that other tools see.
    let name = vault.entry_name("ins_a", ADMIN_TOKEN);
    let (service, account) = name.split_once('/').unwrap();
    let out = Command::new("secret-tool")
        .args(["lookup", "service", service, "username", account])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tga_second");

    vault.delete("ins_a", ADMIN_TOKEN).unwrap();
    vault.delete("ins_a", ADMIN_TOKEN).unwrap();
    assert!(vault.get("ins_a", ADMIN_TOKEN).unwrap().is_none());
}

const CHILD: &str = "TOLLGATE_TEST_NO_KEYRING_CHILD";

/// Runs the body in a child process whose session bus does not exist.
#[test]
fn without_a_keyring_the_console_says_so_and_stores_nothing() {
    if std::env::var_os(CHILD).is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "without_a_keyring_the_console_says_so_and_stores_nothing",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/tollgate-no-bus",
            )
            .env_remove("DISPLAY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    let vault = Vault::new("tollgate-test-nobus");
    let err = vault.check().unwrap_err();
    assert_eq!(err.code(), "keyring_unavailable");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let console = Console::open(dir.path(), vault, ClientOptions::default()).unwrap();
        let status = console.keyring_status().await;
        assert!(!status.available);
        assert!(
            status
                .message
                .unwrap()
                .contains("no OS keyring is available")
        );
        let err = console
            .add_instance(input(
                "Prod",
                "http://127.0.0.1:9",
                Some("tga_secret_value"),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "keyring_unavailable");
        assert!(
            err.to_string()
                .contains("will not store them anywhere else")
        );
        assert!(
            console.list_instances().unwrap().is_empty(),
            "no half-added instance"
        );
        drop(console);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(
                !bytes.windows(16).any(|w| w == b"tga_secret_value"),
                "secret written to disk"
            );
        }
    });
}
