//! Bad input to the `train` binary: a clear error naming the file and the problem, a non-zero
//! exit, no panic, and no damage to an existing checkpoint.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist")
}

fn train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("train runs")
}

/// Asserts a clean failure whose message contains every one of `needles`.
fn fails_with(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert_ne!(out.status.code(), Some(101), "panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks `{n}`: {stderr}");
    }
}

/// The readable copy of `run`'s checkpoint (state and config).
fn checkpoint_json(run: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(run.join("checkpoint.json")).unwrap()).unwrap()
}

/// `--labels` with G and D at width 8: an attribute-conditional run small enough for a test.
fn small_labelled(labels: &Path) -> [&str; 6] {
    [
        "--labels",
        labels.to_str().unwrap(),
        "--ngf",
        "8",
        "--ndf",
        "8",
    ]
}

/// `--labels` with G twice as wide as `small_labelled`'s: a run a width-8 checkpoint or
/// generator cannot start.
fn wider_labelled(labels: &Path) -> [&str; 6] {
    [
        "--labels",
        labels.to_str().unwrap(),
        "--ngf",
        "16",
        "--ndf",
        "8",
    ]
}

/// A copy of the fixture with `edit` applied to one of its files.
fn broken_mnist(file: &str, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(fixture()).unwrap() {
        let p = entry.unwrap().path();
        fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    edit(&dir.path().join(file));
    dir
}

fn mnist_args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "--dataset",
        "mnist",
        "--data",
        data,
        "--out",
        out,
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--quiet",
    ]
}

/// Arguments for a quiet folder run (the 64×64 DCGAN, batch size 1) of `data` into `out`.
fn folder_args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "--dataset",
        "folder",
        "--data",
        data,
        "--out",
        out,
        "--batch-size",
        "1",
        "--quiet",
    ]
}

/// A folder holding one black 64×64 PNG, `a.png`.
fn one_image_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    image::RgbImage::new(64, 64)
        .save(dir.path().join("a.png"))
        .unwrap();
    dir
}

fn gunzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut v = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap())
        .read_to_end(&mut v)
        .unwrap();
    v
}

#[test]
fn missing_mnist_directory() {
    let out = tempfile::tempdir().unwrap();
    let o = train(&mnist_args("/no/such/mnist", out.path().to_str().unwrap()));
    fails_with(&o, &["/no/such/mnist", "train-images-idx3-ubyte"]);
}

#[test]
fn truncated_gzip() {
    let data = broken_mnist("train-images-idx3-ubyte.gz", |p| {
        let bytes = fs::read(p).unwrap();
        fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
    });
    let out = tempfile::tempdir().unwrap();
    let o = train(&mnist_args(
        data.path().to_str().unwrap(),
        out.path().to_str().unwrap(),
    ));
    fails_with(&o, &["train-images-idx3-ubyte.gz", "gzip"]);
}

#[test]
fn truncated_raw_idx() {
    let data = broken_mnist("train-images-idx3-ubyte.gz", |p| {
        let raw = gunzip(p);
        fs::remove_file(p).unwrap();
        fs::write(p.with_extension(""), &raw[..raw.len() - 100]).unwrap();
    });
    let out = tempfile::tempdir().unwrap();
    let o = train(&mnist_args(
        data.path().to_str().unwrap(),
        out.path().to_str().unwrap(),
    ));
    fails_with(&o, &["train-images-idx3-ubyte", "truncated"]);
}

#[test]
fn wrong_magic() {
    let data = broken_mnist("train-images-idx3-ubyte.gz", |p| {
        let mut raw = gunzip(p);
        raw[3] = 0x01;
        let mut gz =
            flate2::write::GzEncoder::new(fs::File::create(p).unwrap(), Default::default());
        gz.write_all(&raw).unwrap();
        gz.finish().unwrap();
    });
    let out = tempfile::tempdir().unwrap();
    let o = train(&mnist_args(
        data.path().to_str().unwrap(),
        out.path().to_str().unwrap(),
    ));
    fails_with(
        &o,
        &[
            "train-images-idx3-ubyte.gz",
            "wrong magic number 0x00000801",
        ],
    );
}

#[test]
fn label_count_mismatch() {
    let data = broken_mnist("train-labels-idx1-ubyte.gz", |p| {
        let raw = gunzip(p);
        let mut fewer = raw[..raw.len() - 1].to_vec();
        fewer[4..8].copy_from_slice(&(raw.len() as u32 - 9).to_be_bytes());
        fs::remove_file(p).unwrap();
        fs::write(p.with_extension(""), fewer).unwrap();
    });
    let out = tempfile::tempdir().unwrap();
    let o = train(&mnist_args(
        data.path().to_str().unwrap(),
        out.path().to_str().unwrap(),
    ));
    fails_with(&o, &["train-labels-idx1-ubyte", "319 labels", "320 images"]);
}

#[test]
fn empty_image_folder() {
    let data = tempfile::tempdir().unwrap();
    fs::write(data.path().join("notes.txt"), "not an image").unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = train(&[
        "--dataset",
        "folder",
        "--data",
        data.path().to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    fails_with(
        &o,
        &[data.path().to_str().unwrap(), "no PNG or JPEG images"],
    );
}

#[test]
fn unreadable_image() {
    let data = one_image_folder();
    fs::write(data.path().join("b.png"), b"\x89PNG but not really").unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = train(&[
        "--dataset",
        "folder",
        "--data",
        data.path().to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    fails_with(&o, &["b.png", "unreadable image"]);
}

#[test]
fn unknown_dataset_and_architecture() {
    let out = tempfile::tempdir().unwrap();
    let o = train(&[
        "--dataset",
        "cifar",
        "--data",
        ".",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    fails_with(&o, &["cifar"]);
    let fixture = fixture();
    let mut args = mnist_args(fixture.to_str().unwrap(), out.path().to_str().unwrap());
    args.extend(["--arch", "resnet"]);
    fails_with(&train(&args), &["unknown architecture `resnet`"]);
}

#[test]
fn zero_batch_size() {
    let out = tempfile::tempdir().unwrap();
    let fixture = fixture();
    let mut args = mnist_args(fixture.to_str().unwrap(), out.path().to_str().unwrap());
    args.extend(["--batch-size", "0"]);
    fails_with(&train(&args), &["--batch-size"]);
}

#[test]
fn architecture_options_of_mnist_cdcgan_reach_the_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let fixture = fixture();
    let mut args = mnist_args(fixture.to_str().unwrap(), out.path().to_str().unwrap());
    args.extend([
        "--minibatch-stddev",
        "--spectral-norm",
        "--projection",
        "--deep-d",
        "--g-full-res",
    ]);
    let o = train(&[&args[..], &["--max-steps", "2"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let state = checkpoint_json(out.path());
    let arch = &state["config"]["architecture"];
    assert_eq!(arch["minibatch_stddev"], true, "{arch}");
    assert_eq!(arch["spectral_norm"], true, "{arch}");
    assert_eq!(arch["projection"], true, "{arch}");
    assert_eq!(arch["deep_d"], true, "{arch}");
    assert_eq!(arch["full_res"], true, "{arch}");
    let kernels = |net: &str| -> Vec<u64> {
        let layers = state["config"][net]["net"]["layers"].as_array().unwrap();
        layers.iter().filter_map(|l| l["kernel"].as_u64()).collect()
    };
    // G: two 4×4 ConvTs, then the 3×3 conv at 28×28; D: two 4×4 convs, then the 3×3 one.
    assert_eq!(kernels("generator"), [4, 4, 3]);
    assert_eq!(kernels("discriminator"), [4, 4, 3]);
    // D has no BatchNorm under spectral norm, its stddev channel feeds the last layer, and the
    // label enters at the projection instead of as 10 input planes.
    let d = &state["config"]["discriminator"]["net"];
    let layers = d["layers"].to_string();
    assert!(!layers.contains("batch_norm2d"), "{layers}");
    assert!(layers.contains("minibatch_stddev"), "{layers}");
    assert!(layers.contains("projection"), "{layers}");
    assert_eq!(d["input"], serde_json::json!([1, 28, 28]));
    // A resume loads D's spectral-norm vectors and carries on; without the options it is
    // another architecture, refused with the checkpoint named.
    args.extend(["--resume", "--max-steps", "3"]);
    let o = train(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    args.retain(|a| *a != "--spectral-norm");
    fails_with(&train(&args), &["checkpoint.safetensors", "spectral_norm"]);
}

/// `--preset shipped` is the recipe of the shipped model (its card's five flags, hinge, EMA),
/// and a resume with it continues the same run.
#[test]
fn the_shipped_preset_reaches_the_checkpoint_and_survives_a_resume() {
    let out = tempfile::tempdir().unwrap();
    let fixture = fixture();
    let args = mnist_args(fixture.to_str().unwrap(), out.path().to_str().unwrap());
    let o = train(&[&args[..], &["--preset", "shipped", "--max-steps", "1"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = || checkpoint_json(out.path());
    let state = read();
    let arch = &state["config"]["architecture"];
    for option in ["spectral_norm", "projection", "deep_d", "full_res"] {
        assert_eq!(arch[option], true, "{option}: {arch}");
    }
    let recipe = &state["state"]["recipe"];
    assert_eq!(recipe["loss"], "hinge", "{recipe}");
    assert_eq!(recipe["ema_decay"], 0.999, "{recipe}");
    let o = train(
        &[
            &args[..],
            &["--preset", "shipped", "--resume", "--max-steps", "1"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read()["config"], state["config"]);
    assert_eq!(read()["state"]["recipe"], *recipe);
    assert_eq!(read()["state"]["step"], 2);
}

#[test]
fn mnist_cdcgan_options_are_refused_on_dcgan64() {
    let faces = one_image_folder();
    let out = tempfile::tempdir().unwrap();
    let args = folder_args(faces.path().to_str().unwrap(), out.path().to_str().unwrap());
    for option in ["--projection", "--g-full-res", "--deep-d"] {
        let o = train(&[&args[..], &[option]].concat());
        fails_with(
            &o,
            &[option.trim_start_matches('-'), "mnist-cdcgan", "dcgan64"],
        );
    }
    assert!(!out.path().join("checkpoint.safetensors").exists());
}

#[test]
fn resume_from_another_architecture_leaves_the_checkpoint_intact() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().to_str().unwrap();
    let fixture = fixture();
    let mut first = mnist_args(fixture.to_str().unwrap(), run);
    first.extend(["--max-steps", "1"]);
    let o = train(&first);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ckpt = out.path().join("checkpoint.safetensors");
    let before = fs::read(&ckpt).unwrap();

    // A 64×64 folder run pointed at the MNIST run directory.
    let faces = one_image_folder();
    let mut args = folder_args(faces.path().to_str().unwrap(), run);
    args.push("--resume");
    let o = train(&args);
    fails_with(&o, &["checkpoint.safetensors", "Dcgan64", "MnistCdcgan"]);
    // A fresh run must not overwrite an existing checkpoint either.
    fails_with(
        &train(&mnist_args(fixture.to_str().unwrap(), run)),
        &["--resume"],
    );
    // A torn checkpoint is reported, not trusted.
    assert_eq!(fs::read(&ckpt).unwrap(), before, "checkpoint was modified");
    let torn = tempfile::tempdir().unwrap();
    fs::write(
        torn.path().join("checkpoint.safetensors"),
        &before[..before.len() / 2],
    )
    .unwrap();
    let mut resume = mnist_args(fixture.to_str().unwrap(), torn.path().to_str().unwrap());
    resume.push("--resume");
    fails_with(&train(&resume), &["checkpoint.safetensors"]);
}

#[test]
fn trains_on_an_image_folder_of_mixed_formats() {
    let data = tempfile::tempdir().unwrap();
    for i in 0..4u8 {
        image::RgbaImage::from_pixel(80, 64, image::Rgba([i * 60, 10, 200, 255]))
            .save(data.path().join(format!("rgba-{i}.png")))
            .unwrap();
        image::GrayImage::from_pixel(64, 64, image::Luma([i * 50]))
            .save(data.path().join(format!("gray-{i}.png")))
            .unwrap();
        image::RgbImage::from_pixel(70, 90, image::Rgb([200, i * 40, 0]))
            .save(data.path().join(format!("rgb-{i}.jpg")))
            .unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let o = train(&[
        "--dataset",
        "folder",
        "--data",
        data.path().to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--quiet",
        "--attribution",
        "test swatches, CC0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 12 images / batch 4 = 3 steps; an 8×8 grid of 64×64 samples.
    let grid = image::open(out.path().join("samples/epoch-001.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (8 * 66 + 2, 8 * 66 + 2));
    let json = fs::read_to_string(out.path().join("checkpoint.json")).unwrap();
    assert!(
        json.contains("\"step\": 3") && json.contains("test swatches, CC0"),
        "{json}"
    );
}

/// Two black 64×64 PNGs, `a.png` and `b.png`, and `labels.csv` holding `csv`.
fn labelled_folder(csv: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.png", "b.png"] {
        image::RgbImage::new(64, 64)
            .save(dir.path().join(name))
            .unwrap();
    }
    fs::write(dir.path().join("labels.csv"), csv).unwrap();
    dir
}

#[test]
fn bad_labels_files_are_named_and_nothing_is_written() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    for (csv, wanted) in [
        (
            "file,hair\na.png,long\nc.png,short\n",
            &["line 3", "c.png"][..],
        ),
        ("file,hair\na.png,long\n", &["no row for", "b.png"]),
        (
            "file,hair\na.png,long\nb.png,\n",
            &["line 3", "empty value", "hair"],
        ),
        (
            "file,hair\na.png,long\nb.png,long\n",
            &["`hair` has one class"],
        ),
        ("hair\nlong\nshort\n", &["line 1", "no `file` column"]),
    ] {
        let faces = labelled_folder(csv);
        let labels = faces.path().join("labels.csv");
        let args = folder_args(faces.path().to_str().unwrap(), run.to_str().unwrap());
        let o = train(&[&args[..], &["--labels", labels.to_str().unwrap()]].concat());
        fails_with(&o, &[&["labels.csv"][..], wanted].concat());
        assert!(!run.exists(), "{csv:?}: nothing may be written");
    }
    let fixture = fixture();
    let faces = labelled_folder("file,hair\na.png,long\nb.png,short\n");
    let labels = faces.path().join("labels.csv");
    let args = mnist_args(fixture.to_str().unwrap(), run.to_str().unwrap());
    let o = train(&[&args[..], &["--labels", labels.to_str().unwrap()]].concat());
    fails_with(&o, &["--labels", "image folders"]);
}

#[test]
fn a_labelled_folder_trains_an_attribute_conditional_model_and_resumes() {
    let faces =
        labelled_folder("file,hair,glasses\na.png,long,none\nb.png,short,none\nc.png,long,round\n");
    image::RgbImage::new(64, 64)
        .save(faces.path().join("c.png"))
        .unwrap();
    let labels = faces.path().join("labels.csv");
    let out = tempfile::tempdir().unwrap();
    let args = folder_args(faces.path().to_str().unwrap(), out.path().to_str().unwrap());
    let labelled = [&args[..], &small_labelled(&labels), &["--max-steps", "1"]].concat();
    let o = train(&labelled);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = || checkpoint_json(out.path());
    let state = read();
    let config = &state["config"];
    assert_eq!(
        config["generator"]["attribute_classes"],
        serde_json::json!([2, 2])
    );
    let glasses = &config["dataset"]["attributes"][1];
    assert_eq!(glasses["classes"], serde_json::json!(["none", "round"]));
    let shares = glasses["frequencies"].as_array().unwrap();
    assert!(
        (shares[0].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12,
        "{glasses}"
    );
    assert_eq!(
        config["discriminator"]["net"]["layers"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["type"],
        "projection"
    );
    let o = train(&[&labelled[..], &["--resume"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read()["config"], *config);
    assert_eq!(read()["state"]["step"], 2);
    // The sample grid was drawn with rows of fixed attributes.
    assert!(out.path().join("samples").is_dir());
}

#[test]
fn class_bn_conditions_every_batchnorm_of_g_and_needs_labels() {
    let faces = labelled_folder("file,hair\na.png,long\nb.png,short\n");
    let labels = faces.path().join("labels.csv");
    let out = tempfile::tempdir().unwrap();
    let args = folder_args(faces.path().to_str().unwrap(), out.path().to_str().unwrap());
    let run = [
        &args[..],
        &small_labelled(&labels),
        &["--max-steps", "1", "--g-class-bn"],
    ]
    .concat();
    let o = train(&run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = &checkpoint_json(out.path())["config"];
    assert_eq!(config["architecture"]["class_bn"], true);
    let layers = config["generator"]["net"]["layers"].as_array().unwrap();
    let kinds: Vec<&str> = layers.iter().map(|l| l["type"].as_str().unwrap()).collect();
    let after_bn = kinds
        .windows(2)
        .filter(|w| w == &["batch_norm2d", "class_affine"])
        .count();
    assert_eq!(after_bn, 4, "{kinds:?}");
    let o = train(&[&run[..], &["--resume"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(checkpoint_json(out.path())["state"]["step"], 2);

    let unlabelled = tempfile::tempdir().unwrap();
    let run_dir = unlabelled.path().join("run");
    let args = folder_args(faces.path().to_str().unwrap(), run_dir.to_str().unwrap());
    fails_with(
        &train(&[&args[..], &["--g-class-bn"]].concat()),
        &["--labels"],
    );
    assert!(!run_dir.exists(), "nothing may be written");
    let digits = fixture();
    let mnist = mnist_args(digits.to_str().unwrap(), run_dir.to_str().unwrap());
    fails_with(
        &train(&[&mnist[..], &["--g-class-bn"]].concat()),
        &["g-class-bn", "dcgan64"],
    );
}

#[test]
fn a_second_stage_starts_from_another_run_with_its_own_recipe() {
    let faces = labelled_folder("file,hair\na.png,long\nb.png,short\n");
    let data = faces.path().to_str().unwrap();
    let labels = faces.path().join("labels.csv");
    let out = tempfile::tempdir().unwrap();
    let (first, second) = (out.path().join("first"), out.path().join("second"));
    let (first_s, second_s) = (first.to_str().unwrap(), second.to_str().unwrap());
    let small = small_labelled(&labels);
    let stage = |run: &str, extra: &[&str]| -> Output {
        train(
            &[
                &folder_args(data, run)[..],
                &small,
                &["--max-steps", "1"],
                extra,
            ]
            .concat(),
        )
    };
    let o = stage(first_s, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let parent = fs::read(first.join("checkpoint.safetensors")).unwrap();
    let term = [
        "--init-from",
        first_s,
        "--classifier-weight",
        "1",
        "--diff-augment",
        "--augment-keeps-colour",
        "--class-balance",
        "--request-power",
        "0.5",
    ];
    let o = stage(second_s, &term);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = checkpoint_json(&second);
    let state = &json["state"];
    assert_eq!(state["step"], 2, "{state}");
    assert_eq!(state["started_from"]["run"], first_s);
    assert_eq!(state["started_from"]["step"], 1);
    assert_eq!(state["started_from"]["recipe"]["diff_augment"], false);
    assert_eq!(state["recipe"]["classifier_weight"], 1.0);
    assert_eq!(state["recipe"]["augment_keeps_colour"], true);
    assert_eq!(state["recipe"]["class_balance"], true);
    assert_eq!(state["recipe"]["request_power"], 0.5);
    for default in ["request_power", "reconstruction_weight"] {
        assert!(
            state["started_from"]["recipe"].get(default).is_none(),
            "{default}: a default is not written"
        );
    }
    assert_eq!(
        fs::read(first.join("checkpoint.safetensors")).unwrap(),
        parent,
        "the first stage's checkpoint is only read"
    );
    // The second stage resumes like any run, keeping its recipe and origin.
    let o = train(
        &[
            &folder_args(data, second_s)[..],
            &small,
            &["--max-steps", "1", "--resume"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = checkpoint_json(&second);
    assert_eq!(json["state"]["step"], 3);
    assert_eq!(json["state"]["started_from"]["step"], 1);
    // Not over an existing run, not from another architecture, not with --resume.
    fails_with(&stage(second_s, &term), &["already exists"]);
    let third = out.path().join("third");
    let o = train(
        &[
            &folder_args(data, third.to_str().unwrap())[..],
            &wider_labelled(&labels),
            &term,
        ]
        .concat(),
    );
    fails_with(&o, &["first", "checkpoint.safetensors"]);
    assert!(!third.join("checkpoint.safetensors").exists());
    fails_with(
        &stage(second_s, &["--init-from", first_s, "--resume"]),
        &["--resume"],
    );
}

#[test]
fn a_generator_file_starts_g_and_its_ema_beside_a_fresh_d() {
    use gan_models::checkpoint::{load_generator, load_generator_weights, save_generator, Weights};
    let faces = labelled_folder("file,hair\na.png,long\nb.png,short\n");
    let data = faces.path().to_str().unwrap();
    let labels = faces.path().join("labels.csv");
    let out = tempfile::tempdir().unwrap();
    let (first, second) = (out.path().join("first"), out.path().join("second"));
    let small = small_labelled(&labels);
    let run = |dir: &Path, extra: &[&str]| -> Output {
        let args = folder_args(data, dir.to_str().unwrap());
        train(&[&args[..], &small, &["--max-steps", "2"], extra].concat())
    };
    let o = run(&first, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The generator file `export --safetensors` writes: the first run's EMA weights.
    let device = candle_core::Device::Cpu;
    let shipped = load_generator(&first.join("checkpoint.safetensors"), &device).unwrap();
    let file = out.path().join("generator.safetensors");
    save_generator(&file, &shipped.generator, &shipped.config, "g").unwrap();
    let file_s = file.to_str().unwrap();
    // G held still (learning rate 0), so its weights after two steps are still the file's, and
    // its EMA (an average of copies of them) the same up to rounding.
    let o = run(
        &second,
        &[
            "--init-from",
            file_s,
            "--lr-g",
            "0",
            "--oversample-rare",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let state = &checkpoint_json(&second)["state"];
    assert_eq!(state["step"], 2, "{state}");
    assert_eq!(state["adam_d_t"], 2, "D's Adam starts afresh");
    assert_eq!(state["started_from"]["run"], file_s);
    assert_eq!(state["started_from"]["step"], 0);
    assert!(state["started_from"].get("recipe").is_none(), "{state}");
    assert_eq!(state["recipe"]["oversample_rare"], 1.0);
    let checkpoint = second.join("checkpoint.safetensors");
    for (weights, tolerance) in [(Weights::Trained, 0.0), (Weights::Inference, 1e-6)] {
        let g = load_generator_weights(&checkpoint, &device, weights).unwrap();
        for (name, tensor) in shipped.generator.net.params.trainable() {
            let now = &g.generator.net.params.trainable()[name];
            let values =
                |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let diff = values(now.as_tensor())
                .iter()
                .zip(values(tensor.as_tensor()))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff <= tolerance, "{weights:?} {name}: {diff}");
        }
    }
    // Not from a generator of other widths; nothing written then.
    let third = out.path().join("third");
    let args = folder_args(data, third.to_str().unwrap());
    let o = train(
        &[
            &args[..],
            &wider_labelled(&labels),
            &["--init-from", file_s],
        ]
        .concat(),
    );
    fails_with(&o, &["generator.safetensors", "widths"]);
    assert!(!third.join("checkpoint.safetensors").exists());
}

#[test]
fn the_reconstruction_term_is_kept_in_the_recipe_across_a_resume() {
    let faces = labelled_folder("file,hair\na.png,long\nb.png,short\n");
    let data = faces.path().to_str().unwrap();
    let labels = faces.path().join("labels.csv");
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let run_s = run.to_str().unwrap();
    let small = small_labelled(&labels);
    let step = |extra: &[&str]| -> Output {
        train(
            &[
                &folder_args(data, run_s)[..],
                &small,
                &["--max-steps"],
                extra,
            ]
            .concat(),
        )
    };
    let o = step(&["1", "--reconstruction-weight", "50"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        checkpoint_json(&run)["state"]["recipe"]["reconstruction_weight"],
        50.0
    );
    let o = step(&["1", "--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let state = &checkpoint_json(&run)["state"];
    assert_eq!(state["step"], 2);
    assert_eq!(state["recipe"]["reconstruction_weight"], 50.0);
}

#[test]
fn recipe_options_that_cannot_apply_are_refused() {
    let faces = one_image_folder();
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let args = folder_args(faces.path().to_str().unwrap(), run.to_str().unwrap());
    for (extra, wanted) in [
        (&["--classifier-weight", "1"][..], "projection"),
        (&["--classifier-weight=-1"], "classifier weight"),
        (&["--augment-keeps-colour"], "--diff-augment"),
        (&["--class-balance"], "--classifier-weight"),
        (&["--request-power", "0.5"], "--labels"),
        (&["--request-power", "2"], "request power"),
        (&["--reconstruction-weight", "1"], "--labels"),
        (&["--reconstruction-weight=-1"], "reconstruction weight"),
        (&["--oversample-rare", "1"], "--labels"),
        (&["--oversample-rare=-1"], "oversampling power"),
        (
            &["--reconstruction-weight", "1", "--request-power", "0.5"],
            "--request-power",
        ),
    ] {
        fails_with(&train(&[&args[..], extra].concat()), &[wanted]);
        assert!(!run.exists(), "{extra:?}: nothing may be written");
    }
}
