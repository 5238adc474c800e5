//! The kiosk under faults, with the real ONNX Runtime: the model file removed, replaced by
//! another model and by garbage; the display going away and coming back; a flood of HTTP
//! requests; and a short soak whose memory must stay flat.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod common;
use common::{eventually, fixture, free_port, http, kiosk, model, stop};

fn log_has(log: &Path, needle: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|s| s.contains(needle))
}

fn frames_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("f"))
        })
        .count()
}

/// Replaces `to` atomically with a copy of `from`, as a deploy script should.
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("part");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn the_model_file_can_vanish_be_replaced_or_broken_while_the_kiosk_runs() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let live = dir.path().join("live.onnx");
    std::fs::copy(model(), &live).unwrap();
    let log = dir.path().join("kiosk.log");
    let spec = format!("png:{}/f{{n}}.png", frames.display());
    let child = kiosk(
        &[
            "--model",
            live.to_str().unwrap(),
            "--display",
            &spec,
            "--interval",
            "0.05",
            "--no-http",
            "--no-stdin",
            "--threads",
            "1",
        ],
        &log,
    );
    eventually("first frames", || frames_in(&frames) >= 3);

    std::fs::remove_file(&live).unwrap();
    eventually("the removal is noticed", || {
        log_has(&log, "is gone; keeping the loaded model")
    });
    let n = frames_in(&frames);
    eventually("frames continue without the file", || {
        frames_in(&frames) > n + 5
    });

    std::fs::write(&live, b"not an onnx model").unwrap();
    eventually("a broken file is refused", || {
        log_has(&log, "cannot reload the model")
    });
    let n = frames_in(&frames);
    eventually("frames continue after the refusal", || {
        frames_in(&frames) > n + 5
    });

    replace(Path::new(&fixture("tiny-unconditional.onnx")), &live);
    eventually("another model is loaded", || {
        log_has(&log, "reloaded model")
    });
    let n = frames_in(&frames);
    eventually("frames from the new model", || frames_in(&frames) > n + 5);
    assert!(
        !log_has(&log, "frame failed"),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    stop(child);
}

#[test]
fn a_framebuffer_that_goes_away_and_comes_back_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let fb = dir.path().join("fb0");
    let log = dir.path().join("kiosk.log");
    let child = kiosk(
        &[
            "--model",
            model().to_str().unwrap(),
            "--display",
            &format!("fb:{}", fb.display()),
            "--fb-geometry",
            "64x48",
            "--interval",
            "0.05",
            "--no-http",
            "--no-stdin",
            "--threads",
            "1",
        ],
        &log,
    );
    let len = 64 * 48 * 2;
    eventually("frames on the framebuffer", || {
        std::fs::metadata(&fb).is_ok_and(|m| m.len() == len)
    });
    std::fs::remove_file(&fb).unwrap();
    eventually("the loss is noticed", || log_has(&log, "went away"));
    eventually("write errors are retried", || {
        log_has(&log, "display write failed, will retry")
    });
    // The device comes back (an empty node); the kiosk reopens it and draws again.
    std::fs::write(&fb, b"").unwrap();
    eventually("frames on the returned framebuffer", || {
        std::fs::metadata(&fb).is_ok_and(|m| m.len() == len)
    });
    stop(child);
}

/// A number field of `/proc/PID/status` (`VmRSS` in KiB, `Threads`).
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS")
}

/// Starts the kiosk with HTTP on a free port and waits until it listens.
fn http_kiosk(dir: &Path) -> (std::process::Child, u16, std::path::PathBuf) {
    let port = free_port();
    let log = dir.join("kiosk.log");
    let child = kiosk(
        &[
            "--model",
            model().to_str().unwrap(),
            "--display",
            &format!("png:{}", dir.join("k.png").display()),
            "--http",
            &format!("127.0.0.1:{port}"),
            "--interval",
            "0",
            "--no-stdin",
            "--threads",
            "1",
        ],
        &log,
    );
    eventually("listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, port, log)
}

fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

/// 2,000 connections that send nothing or only part of a request head: the kiosk keeps a
/// bounded number open (the oldest idle ones give way), a real request is still answered within
/// a second, threads and memory stay bounded, and both return to the idle baseline once the
/// clients leave.
#[test]
fn idle_and_slow_header_floods_leave_the_endpoint_answering() {
    use std::io::Write;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let (child, port, _log) = http_kiosk(dir.path());
    let pid = child.id();
    assert_eq!(get(port, "/image.png?seed=1").0, 200);
    std::thread::sleep(Duration::from_millis(200));
    let (threads_idle, rss_idle) = (status_field(pid, "Threads"), rss_kib(pid));

    let mut flood = Vec::new();
    for i in 0..2000 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        if i % 2 == 1 {
            // Slow headers: a request line and one header, never the blank line.
            let _ = s.write_all(b"GET /image.png HTTP/1.1\r\nHost: x\r\n");
        }
        flood.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let threads_flood = status_field(pid, "Threads");
    let rss_flood = rss_kib(pid);
    let t = Instant::now();
    let (status, _) = get(port, "/image.png?seed=3");
    let answered_in = t.elapsed();
    let (_, stats) = get(port, "/stats");
    let stats = String::from_utf8_lossy(&stats).to_string();
    eprintln!(
        "idle: {threads_idle} threads, {rss_idle} KiB; flood of 2000: {threads_flood} threads, \
         {rss_flood} KiB; a request answered in {answered_in:?}; {stats}"
    );
    assert_eq!(status, 200);
    assert!(answered_in < Duration::from_secs(1), "took {answered_in:?}");
    assert!(
        threads_flood <= threads_idle + 70,
        "{threads_flood} threads under the flood (idle: {threads_idle})"
    );
    assert!(
        rss_flood < rss_idle + 32 * 1024,
        "RSS {rss_flood} KiB under the flood (idle: {rss_idle} KiB)"
    );
    let evicted: u64 = stats
        .split("\"evicted\":")
        .nth(1)
        .and_then(|v| v.split([',', '}']).next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        evicted >= 1900,
        "connections beyond the bound are counted: {stats}"
    );

    drop(flood);
    let t = Instant::now();
    eventually("threads back to the idle baseline", || {
        status_field(pid, "Threads") <= threads_idle
    });
    let back_in = t.elapsed();
    let rss_after = rss_kib(pid);
    eprintln!("back to {threads_idle} threads in {back_in:?}; RSS {rss_after} KiB");
    assert!(back_in < Duration::from_secs(10), "took {back_in:?}");
    assert!(
        rss_after < rss_idle + 8 * 1024,
        "RSS {rss_after} KiB (idle: {rss_idle} KiB)"
    );
    assert_eq!(get(port, "/image.png?seed=4").0, 200);
    stop(child);
}

#[test]
fn an_http_flood_gets_503s_not_unbounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port, log) = http_kiosk(dir.path());
    let get = |path: &str| get(port, path);
    assert_eq!(get("/image.png?seed=1").0, 200);
    let before = rss_kib(child.id());
    // 32 clients × 20 requests for the largest grid, all at once.
    let (ok, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..32)
        .map(|i| {
            let (ok, busy) = (ok.clone(), busy.clone());
            std::thread::spawn(move || {
                for j in 0..20 {
                    let req = format!(
                        "GET /image.png?count=64&seed={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        i * 100 + j
                    );
                    match http(port, &req).0 {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        503 => busy.fetch_add(1, Ordering::Relaxed),
                        other => panic!("status {other}"),
                    };
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let (ok, busy) = (ok.load(Ordering::Relaxed), busy.load(Ordering::Relaxed));
    assert_eq!(ok + busy, 640);
    assert!(busy > 0, "no request was refused ({ok} answered)");
    assert!(ok > 0);
    let after = rss_kib(child.id());
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(
        get("/image.png?seed=2").0,
        200,
        "serves again after the flood"
    );
    assert!(log_has(&log, "HTTP queue full"));
    stop(child);
}

#[test]
fn a_short_soak_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
        .args(["soak", "--model"])
        .arg(model())
        .arg("--display")
        .arg(format!("fb:{}", dir.path().join("fb").display()))
        .args([
            "--fb-geometry",
            "320x240",
            "--frames",
            "3000",
            "--report-every",
            "500",
            "--max-growth-mib",
            "2",
            "--threads",
            "1",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| frames"))
        .count();
    assert_eq!(rows, 6, "{stdout}");
    assert!(stdout.contains("3000 frames"), "{stdout}");
}
