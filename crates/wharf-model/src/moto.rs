//! Test support (feature `moto`): a real S3-compatible server for the trainer's and the server's
//! S3 tests, `moto_server` from PyPI (`pip install 'moto[server]'`), started on a free port.
//!
//! The binary is `$WHARF_MOTO_SERVER` or `moto_server` on PATH (scripts/test.sh installs it in a
//! venv and sets the variable). Without it, [`Moto::start`] panics with how to install it: a
//! test that skips silently cannot fail. `WHARF_SKIP_S3_TESTS=1` makes it return `None` instead
//! (say so loudly; CI must not set it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::location::S3Config;

/// A running `moto_server`, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto_server, or `None` when `WHARF_SKIP_S3_TESTS=1`. Panics when it is missing.
    pub fn start() -> Option<Moto> {
        if std::env::var("WHARF_SKIP_S3_TESTS").as_deref() == Ok("1") {
            eprintln!("SKIPPED: WHARF_SKIP_S3_TESTS=1 (the S3 code paths were NOT exercised)");
            return None;
        }
        let binary = find_binary().unwrap_or_else(|| {
            panic!(
                "moto_server not found (set WHARF_MOTO_SERVER or put it on PATH): these tests \
                 need an S3-compatible server. Install it with \
                 `python3 -m venv target/moto-venv && target/moto-venv/bin/pip install \
                 'moto[server]==5.2.5'` and set WHARF_MOTO_SERVER=target/moto-venv/bin/moto_server \
                 (scripts/test.sh does this), or set WHARF_SKIP_S3_TESTS=1 to skip them"
            )
        });
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while request(port, "GET", "/").is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("{} exited with {status} before listening", binary.display());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on port {port} within 60 s",
                binary.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// Credentials moto accepts (any) and its endpoint.
    pub fn config(&self) -> S3Config {
        S3Config {
            access_key_id: Some("wharf-test".into()),
            secret_access_key: Some("wharf-test-secret".into()),
            session_token: None,
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
        }
    }

    /// The same, as the environment of a child process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let c = self.config();
        vec![
            ("AWS_ACCESS_KEY_ID", c.access_key_id.unwrap_or_default()),
            (
                "AWS_SECRET_ACCESS_KEY",
                c.secret_access_key.unwrap_or_default(),
            ),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", c.region.unwrap_or_default()),
        ]
    }

    /// Creates a bucket (moto does not check signatures, so a plain PUT does).
    pub fn create_bucket(&self, name: &str) {
        let port = self.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        let status = request(port, "PUT", &format!("/{name}")).expect("PUT bucket");
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "creating bucket {name}: {status}"
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WHARF_MOTO_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
}

/// A bodiless HTTP/1.1 request; returns the status line.
fn request(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or_default().to_string())
}
