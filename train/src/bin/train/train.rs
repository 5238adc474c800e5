//! `train` itself: flags to a dataset, an architecture and options, then the adversarial loop.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use gan_models::kernels::Kernels;
use gan_train::architecture::ArchitectureOptions;
use gan_train::data::{folder, mnist};
use gan_train::preset::Preset;
use gan_train::training::optim::AdamConfig;
use gan_train::training::recipe::{LossKind, Recipe};
use gan_train::training::trainer::{train, Outcome, TrainOptions};
use gan_train::TrainError;

use crate::cli::{DatasetKind, KernelsArg, LossArg, PresetArg, TrainArgs};

pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let (Some(data_dir), Some(out)) = (&args.data, &args.out) else {
        bail!("--data and --out are required");
    };
    let kind = args
        .dataset
        .context("--dataset is required (mnist or folder)")?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let device = crate::device::open(args.device)?;
    let mut data = match (kind, &args.labels) {
        (DatasetKind::Mnist, None) => mnist::load(data_dir, mnist::Split::Train)?,
        (DatasetKind::Mnist, Some(_)) => {
            bail!("--labels is for image folders; MNIST's labels come with its files")
        }
        (DatasetKind::Folder, None) => {
            folder::load(data_dir, args.image_size, args.channels, &args.attribution)?
        }
        (DatasetKind::Folder, Some(labels)) => folder::load_labelled(
            data_dir,
            labels,
            None,
            args.image_size,
            args.channels,
            &args.attribution,
        )?,
    };
    if let Some(n) = args.limit {
        data.truncate(n);
    }
    let digits = matches!(kind, DatasetKind::Mnist);
    let mut arch = ArchitectureOptions {
        name: args.arch.clone(),
        width: args.width,
        ngf: args.ngf,
        ndf: args.ndf,
        minibatch_stddev: args.minibatch_stddev,
        spectral_norm: args.spectral_norm,
        projection: args.projection,
        g_full_res: args.g_full_res,
        deep_d: args.deep_d,
        g_upsample: args.g_upsample,
        g_class_bn: args.g_class_bn,
    };
    let mut recipe = Recipe {
        loss: match args.loss {
            LossArg::Bce => LossKind::Bce,
            LossArg::Hinge => LossKind::Hinge,
        },
        label_smoothing: args.label_smoothing,
        ema_decay: args.ema_decay,
        diff_augment: args.diff_augment,
        augment_keeps_colour: args.augment_keeps_colour,
        classifier_weight: args.classifier_weight,
        class_balance: args.class_balance,
        request_power: args.request_power,
        reconstruction_weight: args.reconstruction_weight,
        oversample_rare: args.oversample_rare,
    };
    if let Some(preset) = args.preset {
        let preset = match preset {
            PresetArg::Shipped => Preset::Shipped,
            PresetArg::Classic => Preset::Classic,
        };
        preset.apply(&mut arch, &mut recipe, digits);
    }
    let architecture = arch.build(data.channels, digits)?;
    let config = architecture.config(data.info.clone())?;
    tracing::info!(
        images = data.len(),
        architecture = architecture.name(),
        generator_macs = config.generator.net.macs()?,
        "training into {}",
        out.display()
    );
    let adam = |lr: Option<f64>| AdamConfig {
        lr: lr.unwrap_or(args.lr),
        beta1: args.beta1,
        beta2: args.beta2,
        eps: 1e-8,
    };
    let opts = TrainOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        adam_g: adam(args.lr_g),
        adam_d: adam(args.lr_d),
        recipe,
        seed: args.seed,
        resume: args.resume,
        log_every: args.log_every,
        progress: !args.quiet,
        max_steps: args.max_steps,
        kernels: match args.kernels {
            KernelsArg::Fast => Kernels::Fast,
            KernelsArg::Candle => Kernels::Candle,
        },
        init_from: args.init_from.clone(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    let summary = match train(&data, config, &opts, out, &device, &stop) {
        Err(TrainError::CheckpointExists { path }) => bail!(
            "{}: a checkpoint already exists: pass --resume to continue it, or pick a new --out",
            path.display()
        ),
        summary => summary?,
    };
    tracing::info!(
        step = summary.state.step,
        epoch = summary.state.epoch,
        images_per_s = summary.images_per_s as u64,
        elapsed_s = summary.state.elapsed_s as u64,
        "{}",
        match summary.outcome {
            Outcome::Finished => "training finished",
            Outcome::Interrupted => "stopped; resume with --resume",
        }
    );
    Ok(match summary.outcome {
        Outcome::Finished => ExitCode::SUCCESS,
        Outcome::Interrupted if stop.load(Ordering::SeqCst) => ExitCode::from(130),
        Outcome::Interrupted => ExitCode::SUCCESS,
    })
}
