//! The local Stripe-compatible server (`tests/stripe-fixture`, a TEST
//! FIXTURE standing in for Stripe) as a child process of a test: localstripe
//! with the additions listed in its header, from the test venv that
//! `scripts/setup.sh` prepares.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct StripeFixture {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl StripeFixture {
    /// A fixture that accepts only `secret_key`.
    pub fn start(secret_key: &str) -> StripeFixture {
        let venv =
            std::env::var("TOLLGATE_VENV").unwrap_or_else(|_| "/var/tmp/tollgate-venv".into());
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/stripe-fixture/stripe_fixture.py"
        );
        let mut child = Command::new(format!("{venv}/bin/python"))
            .args([script, "--port", "0", "--secret-key", secret_key])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the Stripe fixture starts (run scripts/setup.sh for its venv)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the Stripe fixture says where it listens within 30 s");
        let url = line
            .trim()
            .strip_prefix("stripe-fixture listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the Stripe fixture: {line:?}"))
            .to_owned();
        StripeFixture { child, url }
    }
}

impl Drop for StripeFixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
