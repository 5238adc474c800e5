//! The face judge and `train eval`'s parts metrics on the committed labelled faces: the shipped
//! judge reads held-out faces, real faces score near the floor, noise far above it, and a
//! constant generator is flagged; a judge trained on the fixture learns and round-trips.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use gan_contract::AttributeInfo;
use gan_models::{save_generator, Architecture, DatasetInfo, Generator};
use gan_train::data::dataset::Dataset;
use gan_train::data::folder;
use gan_train::evaluation::judge::{targets, train_judge, Judge};
use gan_train::evaluation::parts::PartsReference;
use gan_train::evaluation::requested::{requests, score_requested};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(part: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/faces")
        .join(part)
}

fn shipped_judge() -> Judge {
    Judge::load(
        &root().join("models/pretrained/faces-judge.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

/// A fixture folder with its labels, read against `judge`'s classes.
fn labelled(part: &str, judge: &Judge) -> Dataset {
    let dir = fixture(part);
    folder::load_labelled(&dir, &dir.join("labels.csv"), Some(&judge.heads), 64, 3, "").unwrap()
}

#[test]
fn shipped_judge_reads_the_held_out_fixture_faces() {
    let judge = shipped_judge();
    assert_eq!(judge.input(), [3, 64, 64]);
    assert_eq!(judge.heads.len(), 9);
    for (head, accuracy) in judge.heads.iter().zip(&judge.accuracy) {
        assert!(*accuracy >= 0.95, "{}: {accuracy}", head.name);
    }
    let held_out = labelled("held-out", &judge);
    let (_, want) = targets(&held_out).unwrap();
    let all: Vec<usize> = (0..held_out.len()).collect();
    let got = judge.judge_dataset(&held_out, &all, &Device::Cpu).unwrap();
    for (head, accuracy) in judge.heads.iter().zip(judge.accuracies(&got, &want)) {
        assert!(accuracy >= 0.9, "{}: {accuracy}", head.name);
    }
}

#[test]
fn real_faces_score_near_the_floor_noise_and_a_constant_generator_far_from_it() {
    let judge = shipped_judge();
    let train = labelled("train", &judge);
    let held_out = labelled("held-out", &judge);
    let device = Device::Cpu;
    // 128 of the 256 training faces are the reference; the other 128 are "generated".
    let reference = PartsReference::new(&judge, &train, Some(&held_out), 128, 0, &device).unwrap();
    assert_eq!(reference.count(), 128);
    let floor = &reference.floor;
    assert!(floor.fid > 0.0 && floor.confidence > 0.9, "{floor:?}");
    let other_real: Vec<f32> = train.floats(0..train.len());
    let real = reference.score(&judge, &other_real, &device).unwrap();
    assert!(
        real.fid < 1.5 * floor.fid,
        "real {} vs floor {}",
        real.fid,
        floor.fid
    );
    assert!(
        real.diversity_ratio > 0.9 && real.confidence > 0.9,
        "{real:?}"
    );

    let mut state = 12345u32;
    let noise: Vec<f32> = (0..128 * 3 * 64 * 64)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    let noise = reference.score(&judge, &noise, &device).unwrap();
    // 128 images in 256 dimensions make a high floor; noise measured 7.5× it.
    assert!(
        noise.fid > 4.0 * floor.fid,
        "noise {} vs floor {}",
        noise.fid,
        floor.fid
    );
    assert!(
        noise.tv_mean() > 1.5 * floor.tv_mean(),
        "{noise:?} vs {floor:?}"
    );
    assert!(
        noise.confidence < floor.confidence - 0.1,
        "{noise:?} vs {floor:?}"
    );

    let one = held_out.floats(0..1);
    let constant: Vec<f32> = (0..128).flat_map(|_| one.iter().copied()).collect();
    let constant = reference.score(&judge, &constant, &device).unwrap();
    assert!(constant.diversity_ratio < 0.01, "{constant:?}");
    assert_eq!(constant.duplicate_rate, 1.0);
    assert!(
        constant.fid > 5.0 * floor.fid,
        "{} vs {}",
        constant.fid,
        floor.fid
    );
    assert!(constant.tv_mean() > 3.0 * floor.tv_mean(), "{constant:?}");
}

#[test]
fn a_judge_trained_on_the_fixture_learns_and_round_trips() {
    let shipped = shipped_judge();
    let train = labelled("train", &shipped);
    let held_out = labelled("held-out", &shipped);
    let bar = indicatif::ProgressBar::hidden();
    let judge = train_judge(&train, &held_out, 6, 1, &Device::Cpu, &bar).unwrap();
    assert_eq!(judge.heads, shipped.heads);
    // 256 faces, 24 steps: far from the shipped judge, but better than its untrained self on
    // the faces it saw.
    let untrained = train_judge(&train, &held_out, 0, 1, &Device::Cpu, &bar).unwrap();
    let (_, want) = targets(&train).unwrap();
    let seen: Vec<usize> = (0..train.len()).collect();
    let mean = |j: &Judge| {
        let got = j.judge_dataset(&train, &seen, &Device::Cpu).unwrap();
        let a = j.accuracies(&got, &want);
        a.iter().sum::<f64>() / a.len() as f64
    };
    let (before, after) = (mean(&untrained), mean(&judge));
    assert!(
        after > before + 0.05,
        "mean accuracy {before} untrained, {after} trained"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("judge.safetensors");
    judge.save(&path).unwrap();
    let back = Judge::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.heads, judge.heads);
    assert_eq!(back.accuracy, judge.accuracy);
    let all: Vec<usize> = (0..held_out.len()).collect();
    let a = judge.judge_dataset(&held_out, &all, &Device::Cpu).unwrap();
    let b = back.judge_dataset(&held_out, &all, &Device::Cpu).unwrap();
    assert_eq!(a.predictions, b.predictions);
    assert_eq!(a.features, b.features);
}

#[test]
fn classifier_refuses_a_bad_labels_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.csv");
    let text = std::fs::read_to_string(fixture("train").join("labels.csv")).unwrap();
    // Line 4 names an image that is not in the folder.
    let bad = text.replacen("face-00002.png", "face-99999.png", 1);
    std::fs::write(&labels, bad).unwrap();
    let out_path = dir.path().join("judge.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_train"))
        .args(["classifier", "--data"])
        .arg(fixture("train"))
        .arg("--labels")
        .arg(&labels)
        .arg("--held-out")
        .arg(fixture("held-out"))
        .arg("--out")
        .arg(&out_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&labels.display().to_string())
            && stderr.contains("line 4")
            && stderr.contains("face-99999.png"),
        "{stderr}"
    );
    assert!(!out_path.exists());
}

#[test]
fn eval_reports_the_parts_table_for_the_shipped_faces_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_train"))
        .current_dir(root())
        .args(["eval", "--data"])
        .arg(fixture("train"))
        .arg("--held-out")
        .arg(fixture("held-out"))
        .arg("--model")
        .arg(root().join("models/pretrained/faces-dcgan64.onnx"))
        .args(["-n", "128"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "faces-judge.safetensors",
        "| model |",
        "| real: held-out vs training |",
        "| hair | 45 |",
        "| glasses | 6 |",
        "pixel statistics (SWD)",
    ] {
        assert!(stdout.contains(want), "no {want:?} in\n{stdout}");
    }
}

#[test]
fn asked_for_real_faces_attributes_the_real_faces_score_the_judges_accuracy() {
    let judge = shipped_judge();
    let held_out = labelled("held-out", &judge);
    let attributes: Vec<AttributeInfo> = judge
        .heads
        .iter()
        .map(|h| AttributeInfo::from_counts(&h.name, h.classes.clone(), &vec![1; h.classes.len()]))
        .collect();
    let labels = held_out.attributes().unwrap();
    let n = held_out.len();
    let asked = requests(labels, 2 * n).unwrap();
    assert_eq!(asked.len(), 2 * n * 9);
    assert_eq!(
        asked[..n * 9],
        asked[n * 9..],
        "the held-out rows, repeated"
    );
    // A perfect generator: it returns the very faces whose attributes it was asked for.
    let faces = held_out.floats(0..n);
    let judged = judge.judge(&faces, &Device::Cpu).unwrap();
    let score = score_requested(&judge, &judged, &asked[..n * 9], &attributes).unwrap();
    assert_eq!(score.names[6], "glasses");
    for (name, share) in score.names.iter().zip(&score.requested) {
        assert!(*share >= 0.9, "{name}: {share}");
    }
    // Asked for the next face's attributes instead, the same faces mostly miss.
    let shifted: Vec<u32> = asked[9..n * 9 + 9].to_vec();
    let wrong = score_requested(&judge, &judged, &shifted, &attributes).unwrap();
    assert!(wrong.requested[0] < 0.3, "hair: {}", wrong.requested[0]);
    // Glasses are mostly `none`: the shifted requests still look met overall, but not per class.
    let (plain, per_class) = (wrong.requested[6], wrong.per_class[6]);
    assert!(
        plain > 0.7 && per_class < 0.6 && score.per_class[6] > 0.9,
        "glasses: {plain} overall, {per_class} per class (perfect: {})",
        score.per_class[6]
    );
    assert!((wrong.commonest[6] - score.commonest[6]).abs() < 0.05);
    // A model whose classes are not the judge's is refused.
    let mut other = attributes.clone();
    other[0].classes.swap(0, 1);
    let e = score_requested(&judge, &judged, &asked[..n * 9], &other).unwrap_err();
    assert!(e.to_string().contains("classes of `hair`"), "{e}");
}

#[test]
fn eval_asks_an_attribute_model_for_the_held_out_attributes() {
    let judge = shipped_judge();
    let info = DatasetInfo {
        name: "faces".into(),
        class_names: vec![],
        attributes: judge
            .heads
            .iter()
            .map(|h| {
                AttributeInfo::from_counts(&h.name, h.classes.clone(), &vec![1; h.classes.len()])
            })
            .collect(),
        attribution: String::new(),
    };
    let arch = Architecture::Dcgan64 {
        channels: 3,
        latent: 16,
        ngf: 4,
        ndf: 4,
        minibatch_stddev: false,
        spectral_norm: false,
        upsample: false,
        class_bn: false,
    };
    let config = arch.config(info).unwrap();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    let g = Generator::init(config.generator.clone(), &mut rng, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("attr.safetensors");
    save_generator(&model, &g, &config, "attr").unwrap();
    let eval = |held_out: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_train"));
        cmd.current_dir(root())
            .args(["eval", "--data"])
            .arg(fixture("train"))
            .arg("--model")
            .arg(&model)
            .args(["-n", "32"]);
        if held_out {
            cmd.arg("--held-out").arg(fixture("held-out"));
        }
        cmd.output().unwrap()
    };
    let out = eval(true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "how often the judge sees the requested class",
        "| hair |",
        "| glasses |",
        "| mean |",
    ] {
        assert!(stdout.contains(want), "no {want:?} in\n{stdout}");
    }
    let out = eval(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && out.status.code() != Some(101),
        "{stderr}"
    );
    assert!(stderr.contains("--held-out"), "{stderr}");
}
