//! `train eval`: scores a generator file against real data: digits with the digit judge and
//! FID, image folders with a judge of their parts (where one fits) and SWD and diversity.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use candle_core::Device;
use gan_models::Weights;
use gan_train::data::dataset::Dataset;
use gan_train::data::labels::Attribute;
use gan_train::data::{folder, mnist};
use gan_train::evaluation::eval::{
    image_table, sample, sample_requested, score_digits, score_images, FolderReference, Reference,
    Source,
};
use gan_train::evaluation::judge::Judge;
use gan_train::evaluation::parts::{parts_table, PartsReference};
use gan_train::evaluation::requested::{requested_table, requests, score_requested};
use gan_train::training::samples::write_image_grid;

use crate::cli::{EvalArgs, DEFAULT_FACES_JUDGE, DEFAULT_JUDGE};

/// Images in the `--grid` of `train eval`.
const EVAL_GRID: usize = 64;

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let device = Device::Cpu;
    if args.n < 2 {
        bail!("-n must be at least 2 (FID needs a covariance)");
    }
    let weights = if args.trained_weights {
        Weights::Trained
    } else {
        Weights::Inference
    };
    let mut source = Source::open(&args.model, weights, args.ort_lib.as_deref(), &device)?;
    let shape = source.image_shape()?;
    println!("model: {} ({})", args.model.display(), source.describe());
    if shape == [1, 28, 28] {
        eval_digits(&args, &mut source, &device)
    } else {
        eval_folder(&args, &mut source, shape, &device)
    }
}

fn eval_digits(args: &EvalArgs, source: &mut Source, device: &Device) -> anyhow::Result<ExitCode> {
    let path = args.judge.clone().unwrap_or_else(|| DEFAULT_JUDGE.into());
    let judge = load_judge(&path, "--data MNIST_DIR", device)?;
    let train = mnist::load(&args.data, mnist::Split::Train)?;
    let test = mnist::load(&args.data, mnist::Split::Test)?;
    let reference = Reference::new(&judge, &train, &test, args.n, args.seed, device)?;
    let (images, requested) = sample(source, args.n, args.seed, device)?;
    write_eval_grid(args, &images, [1, 28, 28])?;
    write_real_grid(args, &test, [1, 28, 28])?;
    let score = score_digits(&judge, &images, &requested, &reference, device)
        .with_context(|| format!("scoring {}", args.model.display()))?;
    println!(
        "judge: {} (test accuracy {:.2} %)",
        path.display(),
        judge.mean_accuracy() * 100.0
    );
    println!("real images per side of the floor: {}", reference.count);
    println!("{score}");
    Ok(ExitCode::SUCCESS)
}

fn eval_folder(
    args: &EvalArgs,
    source: &mut Source,
    [channels, height, width]: [usize; 3],
    device: &Device,
) -> anyhow::Result<ExitCode> {
    if height != width {
        bail!("folder metrics need square images; the model makes {height}×{width}");
    }
    let shape = [channels, height, width];
    let judge = folder_judge(args, shape, device)?;
    let data = folder::load(&args.data, height, channels, "")?;
    let reference = FolderReference::new(&data, args.n, args.seed)?;
    let attributes = source.attributes()?;
    let held_out = match (&args.held_out, attributes.is_empty()) {
        (Some(dir), true) => Some(folder::load(dir, height, channels, "")?),
        (Some(dir), false) => {
            // The model is asked for the held-out faces' attributes, read as the model's classes.
            let known: Vec<Attribute> = attributes
                .iter()
                .map(|a| Attribute {
                    name: a.name.clone(),
                    classes: a.classes.clone(),
                })
                .collect();
            let csv = dir.join("labels.csv");
            let faces = folder::load_labelled(dir, &csv, Some(&known), height, channels, "")?;
            let order: Vec<&str> = faces
                .info
                .attributes
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            if order != known.iter().map(|a| a.name.as_str()).collect::<Vec<_>>() {
                bail!(
                    "{}: columns {order:?} are not the model's attributes in its order",
                    csv.display()
                );
            }
            Some(faces)
        }
        (None, false) => bail!(
            "an attribute-conditional model is asked for the attributes of held-out faces: \
             pass --held-out DIR (with its labels.csv)"
        ),
        (None, true) => None,
    };
    let requested = match held_out.as_ref().and_then(|h| h.attributes()) {
        Some(labels) if !attributes.is_empty() => requests(labels, args.n)?,
        _ => Vec::new(),
    };
    let images = if requested.is_empty() {
        sample(source, args.n, args.seed, device)?.0
    } else {
        sample_requested(source, args.n, &requested, args.seed, device)?
    };
    write_eval_grid(args, &images, shape)?;
    write_real_grid(args, held_out.as_ref().unwrap_or(&data), shape)?;
    match &judge {
        Some((path, judge)) => {
            let real =
                PartsReference::new(judge, &data, held_out.as_ref(), args.n, args.seed, device)?;
            let score = real
                .score(judge, &images, device)
                .with_context(|| format!("scoring {}", args.model.display()))?;
            println!(
                "judge: {} (held-out accuracy {:.2} % mean over {} attributes)",
                path.display(),
                judge.mean_accuracy() * 100.0,
                judge.heads.len()
            );
            println!(
                "{} generated images; FID on {} per side against as many training images",
                score.samples,
                real.count()
            );
            println!(
                "{}\n",
                parts_table(judge, &score, &real.floor, real.held_out)
            );
            if !requested.is_empty() {
                let judged = judge.judge(&images, device)?;
                let asked = score_requested(judge, &judged, &requested, &attributes)?;
                println!(
                    "asked for the attributes of the held-out faces in order ({} images): \
                     how often the judge sees the requested class",
                    args.n
                );
                println!("{}\n", requested_table(&asked));
            }
        }
        None if !requested.is_empty() => bail!(
            "an attribute-conditional model is scored by a judge of its attributes: pass --judge"
        ),
        None => println!(
            "no judge for {channels}×{height}×{width} images: pixel statistics only \
             (train one with `train classifier --data DIR --labels CSV --held-out DIR`)"
        ),
    }
    let score = score_images(&images, &reference, args.seed)
        .with_context(|| format!("scoring {}", args.model.display()))?;
    let floor = reference.floor(args.seed)?;
    println!(
        "pixel statistics (SWD): {} generated vs {} real images ({} more real images for the floor); {}",
        score.samples,
        reference.count,
        reference.count,
        args.data.display()
    );
    println!("{}", image_table(&score, &floor));
    Ok(ExitCode::SUCCESS)
}

fn write_eval_grid(args: &EvalArgs, images: &[f32], shape: [usize; 3]) -> anyhow::Result<()> {
    match &args.grid {
        Some(path) => write_grid(path, images, shape, "images"),
        None => Ok(()),
    }
}

fn write_real_grid(args: &EvalArgs, real: &Dataset, shape: [usize; 3]) -> anyhow::Result<()> {
    match &args.real_grid {
        Some(path) => {
            let first = real.floats(0..EVAL_GRID.min(real.len()));
            write_grid(path, &first, shape, "real images")
        }
        None => Ok(()),
    }
}

/// The first [`EVAL_GRID`] of `images` as an 8×8 PNG grid at `path`.
fn write_grid(path: &Path, images: &[f32], shape: [usize; 3], what: &str) -> anyhow::Result<()> {
    let n = EVAL_GRID.min(images.len() / shape.iter().product::<usize>());
    write_image_grid(images, n, shape, 8, path)?;
    println!("grid of the first {n} {what}: {}", path.display());
    Ok(())
}

fn load_judge(path: &Path, data_hint: &str, device: &Device) -> anyhow::Result<Judge> {
    Judge::load(path, device).with_context(|| {
        format!(
            "cannot load the judge (train one with `train classifier {data_hint} --out {}`)",
            path.display()
        )
    })
}

/// The judge named by `--judge`, else the shipped faces judge when it reads the model's images.
fn folder_judge(
    args: &EvalArgs,
    shape: [usize; 3],
    device: &Device,
) -> anyhow::Result<Option<(PathBuf, Judge)>> {
    let hint = "--data DIR --labels CSV --held-out DIR";
    let path = match &args.judge {
        Some(path) => path.clone(),
        None if shape == [3, 64, 64] && Path::new(DEFAULT_FACES_JUDGE).exists() => {
            PathBuf::from(DEFAULT_FACES_JUDGE)
        }
        None => return Ok(None),
    };
    let judge = load_judge(&path, hint, device)?;
    if judge.input() != shape {
        bail!(
            "{} reads {:?} images; the model makes {shape:?}",
            path.display(),
            judge.input()
        );
    }
    Ok(Some((path, judge)))
}
