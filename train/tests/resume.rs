//! Resuming is exact: with the same seed, 2 epochs straight and 1 epoch + resume + 1 epoch (or an
//! interruption mid-epoch + resume) give bit-identical weights and optimizer state on CPU.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use gan_models::kernels::Kernels;
use gan_models::{Architecture, TensorFile};
use gan_train::data::mnist::{self, Split};
use gan_train::training::optim::AdamConfig;
use gan_train::training::recipe::{LossKind, Recipe};
use gan_train::training::trainer::{train, Outcome, TrainOptions};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist")
}

fn options(epochs: u64, resume: bool, max_steps: Option<u64>) -> TrainOptions {
    TrainOptions {
        epochs,
        batch_size: 32,
        adam_g: AdamConfig::default(),
        adam_d: AdamConfig {
            lr: 4e-4,
            ..AdamConfig::default()
        },
        // Everything the checkpoint must carry: an EMA of G and a non-default recipe (augmentation
        // included, whose draws must follow the step).
        recipe: Recipe {
            loss: LossKind::Bce,
            label_smoothing: 0.1,
            ema_decay: 0.9,
            diff_augment: true,
            ..Recipe::default()
        },
        seed: 3,
        resume,
        log_every: 4,
        progress: false,
        max_steps,
        kernels: Kernels::Fast,
        init_from: None,
    }
}

fn run(dir: &Path, epochs: u64, resume: bool, max_steps: Option<u64>) -> Outcome {
    let data = mnist::load(&fixture(), Split::Train).unwrap();
    let config = Architecture::from_name("mnist-cdcgan", 1)
        .unwrap()
        .config(data.info.clone())
        .unwrap();
    let opts = options(epochs, resume, max_steps);
    train(
        &data,
        config,
        &opts,
        dir,
        &Device::Cpu,
        &AtomicBool::new(false),
    )
    .unwrap()
    .outcome
}

/// Every tensor of the two checkpoints, compared bit for bit.
fn assert_identical(a: &Path, b: &Path) {
    let fa = TensorFile::read(&a.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    let fb = TensorFile::read(&b.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<_> = fa.tensors.keys().collect();
    names.sort();
    assert_eq!(names.len(), fb.tensors.len());
    assert!(
        names.iter().any(|n| n.starts_with("opt_d.v.")),
        "optimizer state is saved"
    );
    for name in names {
        let va = fa.tensors[name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let vb = fb.tensors[name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let same = va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "tensor {name} differs");
    }
}

#[test]
fn two_epochs_equal_one_plus_resume_plus_one() {
    let straight = tempfile::tempdir().unwrap();
    let split = tempfile::tempdir().unwrap();
    assert_eq!(run(straight.path(), 2, false, None), Outcome::Finished);
    assert_eq!(run(split.path(), 1, false, None), Outcome::Finished);
    assert_eq!(run(split.path(), 2, true, None), Outcome::Finished);
    assert_identical(straight.path(), split.path());
    // Both runs wrote a sample grid per epoch, the metrics and the plot.
    for dir in [straight.path(), split.path()] {
        for f in [
            "samples/epoch-001.png",
            "samples/epoch-002.png",
            "loss.png",
            "metrics.csv",
        ] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
    }
    let grid = image::open(split.path().join("samples/epoch-002.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (10 * 30 + 2, 10 * 30 + 2));
    // The resumed run's metrics continue the first one's, without duplicate steps.
    let csv = std::fs::read_to_string(split.path().join("metrics.csv")).unwrap();
    let steps: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, vec![4, 8, 10, 12, 16, 20]);
}

#[test]
fn an_interruption_mid_epoch_resumes_exactly() {
    let straight = tempfile::tempdir().unwrap();
    let broken = tempfile::tempdir().unwrap();
    assert_eq!(run(straight.path(), 2, false, None), Outcome::Finished);
    assert_eq!(run(broken.path(), 2, false, Some(7)), Outcome::Interrupted);
    assert_eq!(run(broken.path(), 2, true, Some(6)), Outcome::Interrupted);
    assert_eq!(run(broken.path(), 2, true, None), Outcome::Finished);
    assert_identical(straight.path(), broken.path());
}
