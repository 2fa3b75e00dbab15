//! nginx on loopback in front of several `tollgated` nodes, as the
//! deployment guide (docs/deployment.md) sets it up: round robin, keep-alive
//! connections to the nodes, a request that could not be sent to a node
//! tried on the next one.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Gateway;

pub struct Balancer {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

/// The `http` block's part for `nodes` behind `listen`: the deployment
/// guide's (docs/deployment.md) without its TLS.
pub fn site(listen: &str, nodes: &[&str]) -> String {
    let servers: String = nodes
        .iter()
        .map(|n| format!("        server {n} max_fails=0;\n"))
        .collect();
    format!(
        "    upstream tollgate {{\n{servers}        keepalive 64;\n    }}\n\
         server {{\n        listen {listen};\n        client_max_body_size 10m;\n\
         location / {{\n            proxy_pass http://tollgate;\n\
         proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n\
         proxy_set_header Host $host;\n            proxy_read_timeout 300s;\n\
         proxy_buffering off;\n        }}\n    }}\n"
    )
}

impl Balancer {
    /// Starts nginx on a free loopback port in front of `nodes`.
    pub fn start(nodes: &[&Gateway]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| n.base.trim_start_matches("http://").to_owned())
            .collect();
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        // A free port: bound and let go (nginx cannot be told port 0).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let conf = config(dir.path(), &site(&listen, &addresses));
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        // Debian puts it in /usr/sbin, which a user's PATH may not hold.
        let nginx = Some(Path::new("/usr/sbin/nginx"))
            .filter(|p| p.exists())
            .unwrap_or(Path::new("nginx"));
        let child = Command::new(nginx)
            .args(["-e", "stderr", "-p"])
            .arg(dir.path())
            // One process: killing it (on drop, or with the test) leaves no
            // worker behind holding the port.
            .args(["-c", "nginx.conf", "-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx runs (scripts/setup.sh installs it)");
        let base = format!("http://{listen}");
        let started = Instant::now();
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not listen on {listen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Balancer {
            child,
            base,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn config(dir: &Path, site: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\nworker_rlimit_nofile 8192;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{site}}}\n"
    )
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
