//! A full disk and a read-only run directory: `train` stops with an error naming the file, exits
//! non-zero without panicking, and the last good checkpoint stays byte-identical.
//! The full disk is made with RLIMIT_FSIZE (writes fail with EFBIG, the same error path as
//! ENOSPC) so the test needs no mount privileges; read-only is a 0555 directory, with the child
//! dropped to `nobody` when the tests run as root (root ignores permission bits).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist")
}

fn train(run: &Path, resume: bool) -> Command {
    train_from(
        Path::new(env!("CARGO_BIN_EXE_train")),
        &fixture(),
        run,
        resume,
    )
}

/// [`train`] with the binary and the MNIST folder at other places.
fn train_from(bin: &Path, data: &Path, run: &Path, resume: bool) -> Command {
    let mut c = Command::new(bin);
    c.args(["--dataset", "mnist", "--data"])
        .arg(data)
        .arg("--out")
        .arg(run)
        .args(["--epochs", "2", "--batch-size", "32", "--quiet"])
        .env("RUST_LOG", "warn");
    if resume {
        c.arg("--resume");
    }
    c
}

/// A run directory holding a checkpoint after one epoch.
fn run_with_checkpoint(dir: &Path) -> Vec<u8> {
    let out = train(dir, false)
        .args(["--max-steps", "10"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("checkpoint.safetensors")).unwrap()
}

fn assert_clean_failure(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure: {stderr}");
    assert_ne!(out.status.code(), Some(101), "panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks `{n}`: {stderr}");
    }
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.ends_with(".tmp"), "temp file left: {name}");
    }
}

#[test]
fn a_full_disk_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let good = run_with_checkpoint(dir.path());
    let mut resume = train(dir.path(), true);
    let limit = (good.len() / 2) as libc::rlim_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        resume.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = resume.output().unwrap();
    assert_clean_failure(&out, &["checkpoint.safetensors", "cannot write"]);
    assert_eq!(
        std::fs::read(dir.path().join("checkpoint.safetensors")).unwrap(),
        good,
        "the last good checkpoint changed"
    );
    no_temp_files(dir.path());
    // With space again, the run resumes from it.
    let out = train(dir.path(), true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_read_only_run_directory_keeps_the_last_good_checkpoint() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("run");
    std::fs::create_dir(&dir).unwrap();
    let good = run_with_checkpoint(&dir);
    let set_mode = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(parent.path(), 0o755);
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        set_mode(&p, if p.is_dir() { 0o555 } else { 0o444 });
    }
    set_mode(&dir, 0o555);
    // SAFETY: getuid has no preconditions.
    let mut resume = if unsafe { libc::getuid() } == 0 {
        // `nobody` may not reach the checkout (a clone under /root is 0700): it runs copies of
        // the binary and the data from the temp directory, which it can read.
        let bin = parent.path().join("train");
        std::fs::copy(env!("CARGO_BIN_EXE_train"), &bin).unwrap();
        set_mode(&bin, 0o755);
        let data = parent.path().join("mnist");
        std::fs::create_dir(&data).unwrap();
        for e in std::fs::read_dir(fixture()).unwrap() {
            let from = e.unwrap().path();
            let to = data.join(from.file_name().unwrap());
            std::fs::copy(&from, &to).unwrap();
            set_mode(&to, 0o644);
        }
        let mut c = train_from(&bin, &data, &dir, true);
        c.uid(65534).gid(65534);
        c
    } else {
        train(&dir, true)
    };
    let out = resume.output().unwrap();
    set_mode(&dir, 0o755);
    assert_clean_failure(&out, &[dir.to_str().unwrap(), "ermission denied"]);
    assert_eq!(
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        good,
        "the last good checkpoint changed"
    );
    no_temp_files(&dir);
}
