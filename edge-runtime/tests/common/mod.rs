//! Helpers shared by the edge runtime's integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The shipped MNIST generator.
pub fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/pretrained/mnist-cdcgan.onnx")
}

/// The shipped 64×64 faces generator (unconditional, RGB).
pub fn faces_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/pretrained/faces-dcgan64.onnx")
}

/// The shipped attribute-conditional 64×64 faces generator (nine attributes).
pub fn faces_attr_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/pretrained/faces-attr-dcgan64.onnx")
}

pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// Runs `edge-runtime` with `args` to completion.
pub fn edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Asserts a clean failure (no panic) whose stderr contains every one of `needles`.
pub fn fails_with(o: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure: {stderr}");
    assert_ne!(o.status.code(), Some(101), "panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks `{n}`: {stderr}");
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one raw request; returns the status and body. A connection reset by the kiosk is
/// tried again (twice at most, said on stderr): CI saw one, once, on a kiosk's first request
/// under load (docs/testing.md); a refused connection or a wrong answer still fails.
pub fn http(port: u16, request: &str) -> (u16, Vec<u8>) {
    let exchange = || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(request.as_bytes())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        Ok(buf)
    };
    let mut tries = 0;
    let buf = loop {
        match exchange() {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && tries < 2 => {
                tries += 1;
                eprintln!("connection reset by the kiosk on port {port}; trying again ({tries})");
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other.unwrap(),
        }
    };
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head")
        + 4;
    let status = std::str::from_utf8(&buf[9..12]).unwrap().parse().unwrap();
    (status, buf[head_end..].to_vec())
}

/// Starts `edge-runtime kiosk` with `args`, stderr to `log`.
pub fn kiosk(args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
        .arg("kiosk")
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits up to 20 s for `cond`.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM and expects a clean exit.
pub fn stop(mut child: Child) {
    // SAFETY: kill on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "kiosk exited with {status}");
}
