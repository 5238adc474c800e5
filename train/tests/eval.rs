//! The judge and `train eval` on the committed fixtures: FID of a set against itself is ~0,
//! noise and a collapsed generator are told apart from real digits, and the shipped model
//! scores like its model card says (on the fixture's digits).

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use gan_train::data::mnist::{self, Split};
use gan_train::evaluation::eval::{score_digits, Reference};
use gan_train::evaluation::fid::fid;
use gan_train::evaluation::judge::{images, train_judge, Judge};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist")
}

fn shipped_judge() -> Judge {
    Judge::load(
        &root().join("models/pretrained/mnist-judge.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn reference(judge: &Judge) -> Reference {
    let train = mnist::load(&fixture(), Split::Train).unwrap();
    let test = mnist::load(&fixture(), Split::Test).unwrap();
    Reference::new(judge, &train, &test, 200, 0, &Device::Cpu).unwrap()
}

#[test]
fn shipped_judge_reads_the_fixture_digits() {
    let judge = shipped_judge();
    assert_eq!(judge.heads.len(), 1);
    assert!(judge.accuracy[0] >= 0.99, "{:?}", judge.accuracy);
    let test = mnist::load(&fixture(), Split::Test).unwrap();
    let got = judge.judge(&images(&test), &Device::Cpu).unwrap();
    let acc = gan_train::evaluation::judge::accuracy(&got.predictions, test.labels());
    assert!(acc >= 0.97, "accuracy on the fixture's test digits: {acc}");
}

#[test]
fn fid_of_a_set_against_itself_is_zero_and_noise_is_far_above_the_floor() {
    let judge = shipped_judge();
    let test = mnist::load(&fixture(), Split::Test).unwrap();
    let real = judge.judge(&images(&test), &Device::Cpu).unwrap().features;
    assert!(fid(&real, &real, judge.feature_width()).unwrap() < 1e-6);

    let reference = reference(&judge);
    assert!(reference.floor > 0.0);
    // Uniform noise "digits", as many as the real set.
    let mut state = 12345u32;
    let noise: Vec<f32> = (0..test.len() * 784)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    let score = score_digits(&judge, &noise, &[], &reference, &Device::Cpu).unwrap();
    assert!(
        score.fid > 10.0 * score.floor,
        "noise FID {} vs floor {}",
        score.fid,
        score.floor
    );
    // Real test digits scored as if generated: accuracy ~ the judge's, FID 0 against themselves.
    let real_images = images(&test);
    let as_generated = score_digits(
        &judge,
        &real_images,
        test.labels(),
        &reference,
        &Device::Cpu,
    )
    .unwrap();
    assert!(as_generated.fid < 1e-6, "{}", as_generated.fid);
    assert!(as_generated.accuracy.unwrap() >= 0.97);
}

#[test]
fn a_constant_generator_gets_a_collapsed_class_distribution() {
    let judge = shipped_judge();
    let reference = reference(&judge);
    let test = mnist::load(&fixture(), Split::Test).unwrap();
    // 200 copies of the first test digit, "requested" as every class in turn.
    let one = &images(&test)[..784];
    let constant: Vec<f32> = (0..200).flat_map(|_| one.iter().copied()).collect();
    let requested: Vec<u32> = (0..200).map(|i| i % 10).collect();
    let score = score_digits(&judge, &constant, &requested, &reference, &Device::Cpu).unwrap();
    assert_eq!(score.entropy_bits, 0.0);
    assert_eq!(score.histogram.iter().filter(|&&c| c > 0).count(), 1);
    assert!(score.accuracy.unwrap() <= 0.11);
    assert!(
        score.fid > 5.0 * score.floor,
        "{} vs {}",
        score.fid,
        score.floor
    );
}

#[test]
fn a_judge_trained_on_the_fixture_learns_and_round_trips() {
    let train = mnist::load(&fixture(), Split::Train).unwrap();
    let test = mnist::load(&fixture(), Split::Test).unwrap();
    let bar = indicatif::ProgressBar::hidden();
    let judge = train_judge(&train, &test, 8, 1, &Device::Cpu, &bar).unwrap();
    // 320 digits, 40 steps: far from 99 %, far above chance.
    assert!(judge.accuracy[0] > 0.5, "{:?}", judge.accuracy);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("judge.safetensors");
    judge.save(&path).unwrap();
    let back = Judge::load(&path, &Device::Cpu).unwrap();
    let a = judge.judge(&images(&test), &Device::Cpu).unwrap();
    let b = back.judge(&images(&test), &Device::Cpu).unwrap();
    assert_eq!(a.predictions, b.predictions);
    assert_eq!(a.features, b.features);
}

fn eval(model: &Path, n: &str, extra: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_train"))
        .args(["eval", "--data"])
        .arg(fixture())
        .arg("--judge")
        .arg(root().join("models/pretrained/mnist-judge.safetensors"))
        .arg("--model")
        .arg(model)
        .args(["-n", n])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn number_after(text: &str, label: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(label)).unwrap();
    line[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('x')
        .parse()
        .unwrap()
}

#[test]
fn eval_scores_the_shipped_model_the_same_in_onnx_runtime_and_candle() {
    let onnx = eval(
        &root().join("models/pretrained/mnist-cdcgan.onnx"),
        "1000",
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let (grid, real_grid) = (dir.path().join("grid.png"), dir.path().join("real.png"));
    let candle = eval(
        &root().join("models/pretrained/mnist-cdcgan.safetensors"),
        "1000",
        &[
            "--grid".as_ref(),
            grid.as_os_str(),
            "--real-grid".as_ref(),
            real_grid.as_os_str(),
        ],
    );
    // The first 64 scored digits and the first 64 test digits, each 8×8 with a 2-pixel border,
    // light strokes on dark.
    let img = image::open(&grid).unwrap().to_luma8();
    let real = image::open(&real_grid).unwrap().to_luma8();
    for g in [&img, &real] {
        assert_eq!(g.dimensions(), (8 * 30 + 2, 8 * 30 + 2));
        assert!(g.pixels().filter(|p| p[0] > 200).count() > 64 * 40);
    }
    assert_ne!(img, real);
    let label = "judge accuracy on the requested digits:";
    let (a, b) = (number_after(&onnx, label), number_after(&candle, label));
    assert!(a >= 98.0, "{onnx}");
    assert!((a - b).abs() <= 0.2, "ONNX {a} vs candle {b}");
    let fid = "FID (judge features) vs MNIST test:";
    let (fa, fb) = (number_after(&onnx, fid), number_after(&candle, fid));
    assert!((fa - fb).abs() <= 0.01 * fa, "ONNX FID {fa} vs candle {fb}");
}

#[test]
fn eval_names_a_missing_judge() {
    let out = Command::new(env!("CARGO_BIN_EXE_train"))
        .args([
            "eval",
            "--judge",
            "/nonexistent/judge.safetensors",
            "--data",
        ])
        .arg(fixture())
        .arg("--model")
        .arg(root().join("models/pretrained/mnist-cdcgan.onnx"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/judge.safetensors") && stderr.contains("train classifier"),
        "{stderr}"
    );
}
