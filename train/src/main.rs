//! `train`: trains a GAN with candle (and benchmarks the training step).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use candle_core::Device;
use clap::{Args, Parser, Subcommand, ValueEnum};
use gan_models::net::ConvBackend;
use gan_models::{Architecture, Weights};
use gan_train::eval::{
    image_table, sample, score_digits, score_images, FolderReference, Reference, Source,
};
use gan_train::judge::{train_judge, Judge};
use gan_train::optim::AdamConfig;
use gan_train::recipe::{LossKind, Recipe};
use gan_train::samples::write_image_grid;
use gan_train::trainer::{train, Outcome, TrainOptions};
use gan_train::{bench, folder, mnist};

#[derive(Parser)]
#[command(
    name = "train",
    version,
    about = "Train a GAN (class-conditional DCGAN on MNIST, DCGAN on image folders) with candle",
    long_about = "Train a GAN with candle.\n\n\
        Examples:\n  train --dataset mnist --data data/mnist --out runs/mnist --epochs 20\n  \
        train --dataset folder --data faces/ --image-size 64 --out runs/faces --epochs 25\n  \
        train --dataset mnist --data data/mnist --out runs/mnist --epochs 30 --resume\n  \
        train classifier --data data/mnist --out models/pretrained/mnist-judge.safetensors\n  \
        train eval --model models/pretrained/mnist-cdcgan.onnx --data data/mnist\n  \
        train bench",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Measure training images/s of the reference architectures on synthetic data.
    Bench(BenchArgs),
    /// Train the digit judge (a small CNN on MNIST) that `eval` scores generators with.
    Classifier(ClassifierArgs),
    /// Score a generator. Digits: judge accuracy on requested digits, class distribution, FID
    /// vs the MNIST test set. Image folders: multi-scale SWD, diversity ratio, near-duplicate
    /// rate. Each next to the same numbers for real images.
    Eval(EvalArgs),
}

#[derive(Args)]
struct ClassifierArgs {
    /// MNIST directory (the four IDX files, .gz or not).
    #[arg(long)]
    data: PathBuf,
    /// Where to write the judge (safetensors).
    #[arg(long, default_value = DEFAULT_JUDGE)]
    out: PathBuf,
    #[arg(long, default_value_t = 6)]
    epochs: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training images.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Args)]
struct EvalArgs {
    /// Generator: .onnx (run in ONNX Runtime), or a safetensors generator file / training
    /// checkpoint (run in candle).
    #[arg(long)]
    model: PathBuf,
    /// Digits: the MNIST directory (its test set is the reference, its training set gives the
    /// floor). Other images: the image folder the model was trained on.
    #[arg(long)]
    data: PathBuf,
    /// The digit judge written by `train classifier`.
    #[arg(long, default_value = DEFAULT_JUDGE)]
    judge: PathBuf,
    /// Generated samples (and real images per side of the floor).
    #[arg(short, long, default_value_t = 10_000)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Score a checkpoint's trained weights instead of their EMA copy.
    #[arg(long)]
    trained_weights: bool,
    /// ONNX Runtime library (default: the usual places, see `scripts/fetch-onnxruntime`).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Also write the first 64 scored images as an 8×8 PNG grid (to see what the numbers mean).
    #[arg(long)]
    grid: Option<PathBuf>,
}

/// Images in the `--grid` of `train eval`.
const EVAL_GRID: usize = 64;

const DEFAULT_JUDGE: &str = "models/pretrained/mnist-judge.safetensors";

#[derive(Clone, Copy, ValueEnum)]
enum DatasetKind {
    /// MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]).
    Mnist,
    /// A folder of PNG/JPEG images (unlabelled).
    Folder,
}

#[derive(Clone, Copy, ValueEnum)]
enum ConvKind {
    /// im2col/col2im + GEMM convolutions, fused BatchNorm/bias + activation and an in-place
    /// Adam update, as custom ops (CPU only).
    Fast,
    /// candle's own ops for all of it (the reference path).
    Candle,
}

impl From<ConvKind> for ConvBackend {
    fn from(k: ConvKind) -> Self {
        match k {
            ConvKind::Fast => ConvBackend::Fast,
            ConvKind::Candle => ConvBackend::Candle,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// BCE on logits with the non-saturating G loss, no label smoothing, no EMA.
    Classic,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceKind {
    Cpu,
    /// Needs a build with `--features cuda`.
    Cuda,
}

#[derive(Args)]
struct TrainArgs {
    /// Dataset format.
    #[arg(long, value_enum, required = true)]
    dataset: Option<DatasetKind>,
    /// Dataset directory.
    #[arg(long, required = true)]
    data: Option<PathBuf>,
    /// Run directory: checkpoint, samples/, metrics.csv, loss.png.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Total epochs (a resumed run continues up to this count).
    #[arg(long, default_value_t = 20)]
    epochs: u64,
    /// Architecture: mnist-cdcgan (default for mnist) or dcgan64 (default for folders).
    #[arg(long)]
    arch: Option<String>,
    /// Channel width multiplier of mnist-cdcgan (1 = the reference network).
    #[arg(long, default_value_t = 1)]
    width: usize,
    /// dcgan64: G's base width (64 = PyTorch examples/dcgan, ~105 M MACs per image; 32 ≈ 27 M).
    #[arg(long, default_value_t = 64)]
    ngf: usize,
    /// dcgan64: D's base width.
    #[arg(long, default_value_t = 64)]
    ndf: usize,
    /// Give D a minibatch-stddev channel (ProGAN) before its last layer, so it can see a batch
    /// lacks variety.
    #[arg(long)]
    minibatch_stddev: bool,
    /// Spectral norm on every D weight, in place of D's BatchNorm (SNGAN; pairs with --loss hinge).
    #[arg(long)]
    spectral_norm: bool,
    /// mnist-cdcgan: D ends in a projection of its features onto a learned label embedding
    /// (projection discriminator) instead of seeing the label as input planes.
    #[arg(long)]
    projection: bool,
    /// mnist-cdcgan: G's last upsampling makes 12 feature maps at 28×28 (BatchNorm, ReLU) and a
    /// 3×3 convolution turns them into the image, instead of one ConvTranspose from 14×14
    /// features straight to pixels (9.6 M MACs per image instead of 7.3 M)
    #[arg(long)]
    g_full_res: bool,
    /// mnist-cdcgan: D gets a third convolution (3×3, stride 1, 128 channels) over its 7×7
    /// features, so each of them sees 18×18 pixels instead of 10×10 (about twice D's cost)
    #[arg(long)]
    deep_d: bool,
    /// `classic`: the DCGAN recipe of the PyTorch reference (BCE, no EMA), overriding --loss,
    /// --label-smoothing, --ema-decay and --diff-augment (e.g. to reproduce its mode collapse on faces).
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Side of the square images a folder is resized to (dcgan64 needs 64).
    #[arg(long, default_value_t = 64)]
    image_size: usize,
    /// Channels for folder images: 1 (gray) or 3 (RGB).
    #[arg(long, default_value_t = 3)]
    channels: usize,
    /// Attribution/license text of a folder dataset, carried into checkpoints and exports.
    #[arg(long, default_value = "")]
    attribution: String,
    /// Use only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam learning rate (both networks unless --lr-g / --lr-d say otherwise).
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// G's learning rate (two time-scale update rule when it differs from D's).
    #[arg(long)]
    lr_g: Option<f64>,
    /// D's learning rate.
    #[arg(long)]
    lr_d: Option<f64>,
    /// Adversarial loss (bce measured best over 20 epochs: README "Choosing the recipe").
    #[arg(long, value_enum, default_value_t = LossKind::Bce)]
    loss: LossKind,
    /// One-sided label smoothing: D's target for real images is 1 − this (bce only).
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// Decay of the EMA of G's weights that samples and exports use; 0 turns it off.
    #[arg(long, default_value_t = 0.999)]
    ema_decay: f64,
    /// DiffAugment: random colour, shift and cut-out on every image D sees, real and generated
    /// (keeps D from memorising a small dataset, e.g. faces).
    #[arg(long)]
    diff_augment: bool,
    #[arg(long, default_value_t = 0.5)]
    beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    beta2: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue the run in --out from its checkpoint (its seed, batch size and Adam settings).
    #[arg(long)]
    resume: bool,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    /// Steps per metrics.csv row.
    #[arg(long, default_value_t = 50)]
    log_every: u64,
    /// Stop after this many steps (writes a checkpoint as Ctrl-C does).
    #[arg(long)]
    max_steps: Option<u64>,
    /// CPU convolution code.
    #[arg(long, value_enum, default_value_t = ConvKind::Fast)]
    conv: ConvKind,
    /// No progress bar (logs only).
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// mnist-cdcgan, dcgan64 or all.
    #[arg(long, default_value = "all")]
    arch: String,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    /// CPU convolution code: fast, candle, or both (alternating).
    #[arg(long, default_value = "both")]
    conv: String,
}

fn device(kind: DeviceKind) -> anyhow::Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => Device::new_cuda(0)
            .context("cannot open CUDA device 0 (was `train` built with --features cuda?)"),
    }
}

fn run_train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let (Some(data_dir), Some(out)) = (args.data, args.out) else {
        bail!("--data and --out are required");
    };
    let kind = args
        .dataset
        .context("--dataset is required (mnist or folder)")?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let device = device(args.device)?;
    let mut data = match kind {
        DatasetKind::Mnist => mnist::load(&data_dir, mnist::Split::Train)?,
        DatasetKind::Folder => {
            folder::load(&data_dir, args.image_size, args.channels, &args.attribution)?
        }
    };
    if let Some(n) = args.limit {
        data.truncate(n);
    }
    let arch_name = args.arch.unwrap_or_else(|| {
        match kind {
            DatasetKind::Mnist => "mnist-cdcgan",
            DatasetKind::Folder => "dcgan64",
        }
        .to_string()
    });
    let mut arch = Architecture::from_name(&arch_name, data.channels)?;
    match &mut arch {
        Architecture::MnistCdcgan {
            width,
            spectral_norm,
            minibatch_stddev,
            projection,
            full_res,
            deep_d,
        } => {
            *width = args.width.max(1);
            *spectral_norm = args.spectral_norm;
            *minibatch_stddev = args.minibatch_stddev;
            *projection = args.projection;
            *full_res = args.g_full_res;
            *deep_d = args.deep_d;
        }
        Architecture::Dcgan64 { .. } if args.projection => {
            bail!(
                "--projection needs class labels: it is an option of mnist-cdcgan, not {arch_name}"
            )
        }
        Architecture::Dcgan64 { .. } if args.g_full_res || args.deep_d => {
            bail!("--g-full-res and --deep-d are options of mnist-cdcgan, not {arch_name}")
        }
        Architecture::Dcgan64 {
            ngf,
            ndf,
            minibatch_stddev,
            spectral_norm,
            ..
        } => {
            *ngf = args.ngf.max(1);
            *ndf = args.ndf.max(1);
            *minibatch_stddev = args.minibatch_stddev;
            *spectral_norm = args.spectral_norm;
        }
    }
    let config = arch.config(data.info.clone())?;
    tracing::info!(
        images = data.len(),
        architecture = arch.name(),
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
        recipe: match args.preset {
            Some(Preset::Classic) => Recipe::default(),
            None => Recipe {
                loss: args.loss,
                label_smoothing: args.label_smoothing,
                ema_decay: args.ema_decay,
                diff_augment: args.diff_augment,
            },
        },
        seed: args.seed,
        resume: args.resume,
        log_every: args.log_every,
        progress: !args.quiet,
        max_steps: args.max_steps,
        conv: args.conv.into(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    let summary = train(&data, config, &opts, &out, &device, &stop)?;
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

fn run_classifier(args: ClassifierArgs) -> anyhow::Result<ExitCode> {
    let device = Device::Cpu;
    let mut train = mnist::load(&args.data, mnist::Split::Train)?;
    if let Some(n) = args.limit {
        train.truncate(n);
    }
    let test = mnist::load(&args.data, mnist::Split::Test)?;
    let bar = indicatif::ProgressBar::new(0);
    let judge = train_judge(&train, &test, args.epochs, args.seed, &device, &bar)?;
    bar.finish_and_clear();
    judge
        .save(&args.out)
        .with_context(|| format!("cannot write the judge to {}", args.out.display()))?;
    println!(
        "test accuracy {:.2} % on {} images; wrote {}",
        judge.test_accuracy * 100.0,
        test.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
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
    let judge = Judge::load(&args.judge, device).with_context(|| {
        format!(
            "cannot load the judge (train one with `train classifier --data MNIST_DIR --out {}`)",
            args.judge.display()
        )
    })?;
    let train = mnist::load(&args.data, mnist::Split::Train)?;
    let test = mnist::load(&args.data, mnist::Split::Test)?;
    let reference = Reference::new(&judge, &train, &test, args.n, args.seed, device)?;
    let (images, requested) = sample(source, args.n, args.seed, device)?;
    write_eval_grid(args, &images, [1, 28, 28])?;
    let score = score_digits(&judge, &images, &requested, &reference, device)
        .with_context(|| format!("scoring {}", args.model.display()))?;
    println!(
        "judge: {} (test accuracy {:.2} %)",
        args.judge.display(),
        judge.test_accuracy * 100.0
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
    let data = folder::load(&args.data, height, channels, "")?;
    let reference = FolderReference::new(&data, args.n, args.seed)?;
    let (images, _) = sample(source, reference.count, args.seed, device)?;
    write_eval_grid(args, &images, [channels, height, width])?;
    let score = score_images(&images, &reference, args.seed)
        .with_context(|| format!("scoring {}", args.model.display()))?;
    let floor = reference.floor(args.seed)?;
    println!(
        "{} generated vs {} real images ({} more real images for the floor); {}",
        score.samples,
        reference.count,
        reference.count,
        args.data.display()
    );
    println!("{}", image_table(&score, &floor));
    Ok(ExitCode::SUCCESS)
}

fn write_eval_grid(args: &EvalArgs, images: &[f32], shape: [usize; 3]) -> anyhow::Result<()> {
    let Some(path) = &args.grid else {
        return Ok(());
    };
    let n = EVAL_GRID.min(images.len() / shape.iter().product::<usize>());
    write_image_grid(images, n, shape, 8, path)?;
    println!("grid of the first {n} images: {}", path.display());
    Ok(())
}

fn run_bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let device = device(args.device)?;
    let names: Vec<&str> = match args.arch.as_str() {
        "all" => vec!["mnist-cdcgan", "dcgan64"],
        one => vec![one],
    };
    let backends: Vec<ConvBackend> = match args.conv.as_str() {
        "both" => vec![ConvBackend::Candle, ConvBackend::Fast],
        "fast" => vec![ConvBackend::Fast],
        "candle" => vec![ConvBackend::Candle],
        other => bail!("--conv must be fast, candle or both, not `{other}`"),
    };
    println!("| architecture | conv | batch | timed steps | train images/s (median) |");
    println!("|---|---|---|---|---|");
    for name in names {
        let channels = if name == "dcgan64" { 3 } else { 1 };
        let arch = Architecture::from_name(name, channels)?;
        for &backend in &backends {
            let row = bench::bench(
                &arch,
                backend,
                args.batch_size,
                args.warmup,
                args.steps,
                &device,
            )?;
            println!(
                "| {} | {:?} | {} | {} | {:.1} |",
                row.architecture, backend, row.batch, row.steps, row.images_per_s
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every op of a training step allocates its output; glibc hands large blocks back to the kernel
/// on free, so each step page-faults and zeroes them again (15–39 % of CPU time measured in
/// ARCHITECTURE.md). Keeping freed memory in the process avoids that.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes allocator thresholds; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// The fast CPU path runs its ops on rayon's pool. candle's element-wise ops have a second pool
/// whose threads spin after each op, stealing the cores rayon's threads need next (13 % of CPU
/// time in a profile; MNIST training 930–965 img/s without it vs 711–893 with it, 2 cores).
/// So unless candle's own ops do the heavy work in this process (`--conv candle`, or `bench`
/// running both), its pool stays at one thread, the caller's. `CANDLE_NUM_THREADS` overrides.
fn single_candle_pool(reference_ops_run: bool) {
    if !reference_ops_run && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Called before any thread starts (set_var is unsound with concurrent readers).
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    single_candle_pool(match &cli.command {
        Some(Command::Bench(args)) => args.conv != "fast",
        None => matches!(cli.train.conv, ConvKind::Candle),
        Some(Command::Classifier(_) | Command::Eval(_)) => false,
    });
    let result = match cli.command {
        Some(Command::Bench(args)) => run_bench(args),
        Some(Command::Classifier(args)) => run_classifier(args),
        Some(Command::Eval(args)) => run_eval(args),
        None => run_train(cli.train),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
