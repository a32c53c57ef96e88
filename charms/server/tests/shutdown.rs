//! The real binary: SIGTERM while a request is in flight lets that request finish, then exits 0.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_finishes_the_in_flight_request_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let child = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--model-repository",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // The log line "wharf-server listening addr=127.0.0.1:PORT" tells us the port.
    let (lines_tx, lines) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let addr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the server logs its address");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    wait_ready(&addr);

    let body = serde_json::to_vec(&v2_fp32(&vec![0.25; INPUT_LEN], 1)).unwrap();
    let mut conn = TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /v2/models/fashion/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let half = body.len() / 2;
    conn.write_all(&body[..half]).unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the server exited with a request in flight"
    );

    conn.write_all(&body[half..]).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap(); // keep-alive is off during shutdown: EOF ends it
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"probabilities\""), "{response}");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(&addr).is_err(),
        "the port is closed after shutdown"
    );
}

/// Kills the server if the test fails half-way, so no orphan holds the port or the output pipe.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(addr: &str) {
    let started = Instant::now();
    loop {
        if let Ok(mut c) = TcpStream::connect(addr) {
            let _ = write!(
                c,
                "GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut text = String::new();
            let _ = c.read_to_string(&mut text);
            if text.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server never became ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
