//! Crash safety: `train` killed with SIGKILL at random moments (checkpoint writes included)
//! always resumes from an intact checkpoint, and the final weights equal an uninterrupted run's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use candle_core::Device;
use gan_models::TensorFile;
use rand::{Rng, SeedableRng};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist")
}

fn command(run: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_train"));
    let data = fixture();
    c.args([
        "--dataset",
        "mnist",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ])
    .args([
        "--epochs",
        "6",
        "--batch-size",
        "32",
        "--seed",
        "9",
        "--quiet",
    ])
    .env("RUST_LOG", "warn")
    .env("RAYON_NUM_THREADS", "2")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if resume {
        c.arg("--resume");
    }
    c
}

fn tensors(run: &Path) -> Vec<(String, Vec<u32>)> {
    let file = TensorFile::read(&run.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    let mut v: Vec<(String, Vec<u32>)> = file
        .tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_at_random_moments_never_tears_the_checkpoint() {
    // The uninterrupted run, timed to spread the kills over a run's length.
    let straight = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    assert!(command(straight.path(), false).status().unwrap().success());
    let full = started.elapsed().as_secs_f64();

    let crashed = tempfile::tempdir().unwrap();
    let ckpt = crashed.path().join("checkpoint.safetensors");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut kills = 0;
    for _ in 0..8 {
        let mut child = command(crashed.path(), ckpt.exists()).spawn().unwrap();
        std::thread::sleep(Duration::from_secs_f64(rng.gen_range(0.05..0.35) * full));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        if ckpt.exists() {
            // Whatever moment it died at, the checkpoint on disk is whole and loadable.
            TensorFile::read(&ckpt, &Device::Cpu).expect("checkpoint torn by SIGKILL");
        }
    }
    assert!(
        kills >= 2,
        "only {kills} kills landed; the run is too fast to test"
    );
    let status = command(crashed.path(), ckpt.exists()).status().unwrap();
    assert!(status.success());
    assert_eq!(
        tensors(crashed.path()),
        tensors(straight.path()),
        "resumed weights differ from an uninterrupted run"
    );
}
