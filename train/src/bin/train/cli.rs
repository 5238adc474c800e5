//! `train`'s command line: every flag, its default and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "train",
    version,
    about = "Train a GAN (class-conditional DCGAN on MNIST, DCGAN on image folders) with candle",
    long_about = "Train a GAN with candle.\n\n\
        Examples:\n  train --dataset mnist --data data/mnist --out runs/mnist --epochs 30 --preset shipped\n  \
        train --dataset folder --data faces/ --image-size 64 --out runs/faces --epochs 15 --preset shipped\n  \
        train --dataset mnist --data data/mnist --out runs/mnist --epochs 40 --resume\n  \
        train classifier --data data/mnist --out models/pretrained/mnist-judge.safetensors\n  \
        train classifier --data faces/ --labels faces/labels.csv --held-out faces-test/ --out faces-judge.safetensors\n  \
        train eval --model models/pretrained/mnist-cdcgan.onnx --data data/mnist\n  \
        train eval --model models/pretrained/faces-dcgan64.onnx --data faces/ --held-out faces-test/\n  \
        train bench",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Measure training images/s of the reference architectures on synthetic data.
    Bench(BenchArgs),
    /// Train a judge that `eval` scores generators with: a small CNN with one classifier head
    /// per label column (MNIST: the digit; an image folder: each column of its labels CSV).
    Classifier(ClassifierArgs),
    /// Score a generator. Digits: judge accuracy on requested digits, class distribution, FID
    /// vs the MNIST test set. Image folders with a judge: FID in its features, per-attribute
    /// class-mix distance, its confidence, diversity and near-duplicates in its features; and
    /// multi-scale SWD. Each next to the same numbers for real images.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct ClassifierArgs {
    /// MNIST directory (the four IDX files, .gz or not), or with --labels an image folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Labels CSV of the image folder --data: a `file` column and categorical columns, one
    /// head each (e.g. faces' hair, eyes, glasses). Without it --data is MNIST.
    #[arg(long, requires = "held_out")]
    pub labels: Option<PathBuf>,
    /// Held-out image folder the judge is measured on (never trained on); with --labels.
    #[arg(long, requires = "labels")]
    pub held_out: Option<PathBuf>,
    /// Labels CSV of --held-out [default: HELD_OUT/labels.csv].
    #[arg(long, requires = "held_out")]
    pub held_out_labels: Option<PathBuf>,
    /// Side the folder's images are resized to.
    #[arg(long, default_value_t = 64)]
    pub image_size: usize,
    /// 1 (grey) or 3 (RGB).
    #[arg(long, default_value_t = 3)]
    pub channels: usize,
    /// Where to write the judge (safetensors).
    #[arg(long, default_value = DEFAULT_JUDGE)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 6)]
    pub epochs: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use only the first N training images.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Generator: .onnx (run in ONNX Runtime), or a safetensors generator file / training
    /// checkpoint (run in candle).
    #[arg(long)]
    pub model: PathBuf,
    /// Digits: the MNIST directory (its test set is the reference, its training set gives the
    /// floor). Other images: the image folder the model was trained on.
    #[arg(long)]
    pub data: PathBuf,
    /// The judge written by `train classifier` [default: the shipped one for the model's
    /// images: models/pretrained/mnist-judge.safetensors for digits, faces-judge for 3×64×64].
    #[arg(long)]
    pub judge: Option<PathBuf>,
    /// Image folders: held-out real images for the floor (else other training images).
    #[arg(long)]
    pub held_out: Option<PathBuf>,
    /// Generated samples (and real images per side of the floor).
    #[arg(short, long, default_value_t = 10_000)]
    pub n: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Score a checkpoint's trained weights instead of their EMA copy.
    #[arg(long)]
    pub trained_weights: bool,
    /// ONNX Runtime library (default: the usual places, see `scripts/fetch-onnxruntime`).
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
    /// Also write the first 64 scored images as an 8×8 PNG grid (to see what the numbers mean).
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Also write the first 64 real images (digits: of the test set; image folders: of
    /// --held-out if given, else of --data) as the same grid, to put beside --grid.
    #[arg(long)]
    pub real_grid: Option<PathBuf>,
}

pub const DEFAULT_JUDGE: &str = "models/pretrained/mnist-judge.safetensors";
/// The judge `eval` uses for 3×64×64 folder models when none is named.
pub const DEFAULT_FACES_JUDGE: &str = "models/pretrained/faces-judge.safetensors";

#[derive(Clone, Copy, ValueEnum)]
pub enum DatasetKind {
    /// MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]).
    Mnist,
    /// A folder of PNG/JPEG images (unlabelled).
    Folder,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KernelsArg {
    /// im2col/col2im + GEMM convolutions, fused BatchNorm/bias + activation and an in-place
    /// Adam update, as custom ops (CPU only).
    Fast,
    /// candle's own ops for all of it (the reference path).
    Candle,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchKernels {
    Fast,
    Candle,
    /// Both, alternating.
    Both,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PresetArg {
    /// What the shipped model of the dataset was trained with (mnist: projection D, spectral
    /// norm, hinge, --deep-d, --g-full-res; folders: --ngf 32 --ndf 32, minibatch stddev,
    /// DiffAugment, hinge); EMA 0.999.
    Shipped,
    /// The PyTorch reference's DCGAN recipe: BCE with the non-saturating G loss, no label
    /// smoothing, no EMA, no augmentation.
    Classic,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LossArg {
    /// BCE on logits for D, non-saturating −log D(G(z)) for G (DCGAN).
    Bce,
    /// Hinge: D minimises relu(1 − D(x)) + relu(1 + D(G(z))), G minimises −D(G(z)).
    Hinge,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DeviceKind {
    Cpu,
    /// Needs a build with `--features cuda`.
    Cuda,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Dataset format.
    #[arg(long, value_enum, required = true)]
    pub dataset: Option<DatasetKind>,
    /// Dataset directory.
    #[arg(long, required = true)]
    pub data: Option<PathBuf>,
    /// Run directory: checkpoint, samples/, metrics.csv, loss.png.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Total epochs (a resumed run continues up to this count).
    #[arg(long, default_value_t = 20)]
    pub epochs: u64,
    /// Architecture: mnist-cdcgan (default for mnist) or dcgan64 (default for folders).
    #[arg(long)]
    pub arch: Option<String>,
    /// Channel width multiplier of mnist-cdcgan (1 = the reference network).
    #[arg(long, default_value_t = 1)]
    pub width: usize,
    /// dcgan64: G's base width (64 = PyTorch examples/dcgan, ~105 M MACs per image; 32 ≈ 27 M).
    #[arg(long, default_value_t = 64)]
    pub ngf: usize,
    /// dcgan64: D's base width.
    #[arg(long, default_value_t = 64)]
    pub ndf: usize,
    /// Give D a minibatch-stddev channel (ProGAN) before its last layer, so it can see a batch
    /// lacks variety.
    #[arg(long)]
    pub minibatch_stddev: bool,
    /// Spectral norm on every D weight, in place of D's BatchNorm (SNGAN; pairs with --loss hinge).
    #[arg(long)]
    pub spectral_norm: bool,
    /// mnist-cdcgan: D ends in a projection of its features onto a learned label embedding
    /// (projection discriminator) instead of seeing the label as input planes.
    #[arg(long)]
    pub projection: bool,
    /// mnist-cdcgan: G's last upsampling makes 12 feature maps at 28×28 (BatchNorm, ReLU) and a
    /// 3×3 convolution turns them into the image, instead of one ConvTranspose from 14×14
    /// features straight to pixels (9.6 M MACs per image instead of 7.3 M)
    #[arg(long)]
    pub g_full_res: bool,
    /// mnist-cdcgan: D gets a third convolution (3×3, stride 1, 128 channels) over its 7×7
    /// features, so each of them sees 18×18 pixels instead of 10×10 (about twice D's cost)
    #[arg(long)]
    pub deep_d: bool,
    /// dcgan64: G doubles its resolution by nearest-neighbour upsampling and a 3×3 convolution
    /// instead of a stride-2 ConvTranspose (no checkerboard). It trains and exports as the
    /// transposed convolution that pair equals, so it costs what the ConvTranspose G of the same
    /// --ngf does (27 M MACs per image at 32)
    #[arg(long)]
    pub g_upsample: bool,
    /// dcgan64 with --labels: conditional BatchNorm in G. After each of its BatchNorms, every
    /// face's channels are scaled and shifted by embeddings of the attributes asked for, so the
    /// request steers every resolution, not only G's input (0.2 M more MACs per image)
    #[arg(long)]
    pub g_class_bn: bool,
    /// A named recipe, set over the architecture and recipe options it names: `shipped` (what
    /// models/pretrained was trained with) or `classic` (the PyTorch reference's DCGAN recipe).
    #[arg(long, value_enum)]
    pub preset: Option<PresetArg>,
    /// Side of the square images a folder is resized to (dcgan64 needs 64).
    #[arg(long, default_value_t = 64)]
    pub image_size: usize,
    /// Channels for folder images: 1 (gray) or 3 (RGB).
    #[arg(long, default_value_t = 3)]
    pub channels: usize,
    /// Attribution/license text of a folder dataset, carried into checkpoints and exports.
    #[arg(long, default_value = "")]
    pub attribution: String,
    /// Folder datasets: a labels CSV (a `file` column and any categorical columns, e.g. the
    /// faces' labels.csv) to train an attribute-conditional dcgan64: G takes a class per column
    /// beside z, D ends in a projection onto each column's class embedding, and the model can
    /// then be asked for, e.g., `--attr hair=long03` on the device. Without it a folder trains
    /// unconditionally.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Use only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate (both networks unless --lr-g / --lr-d say otherwise).
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// G's learning rate (two time-scale update rule when it differs from D's).
    #[arg(long)]
    pub lr_g: Option<f64>,
    /// D's learning rate.
    #[arg(long)]
    pub lr_d: Option<f64>,
    /// Adversarial loss.
    #[arg(long, value_enum, default_value_t = LossArg::Bce)]
    pub loss: LossArg,
    /// One-sided label smoothing: D's target for real images is 1 − this (bce only).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Decay of the EMA of G's weights that samples and exports use; 0 turns it off.
    #[arg(long, default_value_t = 0.999)]
    pub ema_decay: f64,
    /// DiffAugment: random colour, shift and cut-out on every image D sees, real and generated
    /// (keeps D from memorising a small dataset, e.g. faces).
    #[arg(long)]
    pub diff_augment: bool,
    /// DiffAugment without its colour jitter (shift and cut-out only), so D can tell colours
    /// apart: for models asked for colours (hairColor, skinColor).
    #[arg(long)]
    pub augment_keeps_colour: bool,
    /// Conditional models with a projection D: weight of the class term (P2GAN). D's projection
    /// embedding, read as a classifier, learns to name the real images' classes and G to make
    /// its images read as the classes asked for; raises how often a request is met. 0: off.
    #[arg(long, default_value_t = 0.0)]
    pub classifier_weight: f64,
    /// The class term weighs each class by 1/√(its share of the training images), so rare
    /// classes (2 % each: glasses, earrings) are learnt and drawn instead of the commonest.
    #[arg(long)]
    pub class_balance: bool,
    /// With --labels: G's training fakes ask for attributes drawn from the training shares
    /// raised to this power: 1 the training mix, 0.5 the square root (a 2 % class asked for
    /// ~8 % of the time beside a 90 % one), 0 every class equally often.
    #[arg(long, default_value_t = 1.0)]
    pub request_power: f64,
    /// With --labels: G's training fakes ask for the real batch's attributes and G also
    /// minimises the mean |fake − real| times this weight (pix2pix's L1 term). For labels that
    /// decide the image, as DiceBear's nine parts do; elsewhere it blurs. 0: off.
    #[arg(long, default_value_t = 0.0)]
    pub reconstruction_weight: f64,
    /// With --labels: each epoch draws its images with replacement, an image weighted by its
    /// rarest attribute class, (classes in the column × the class's share)^(−P) and at least 1,
    /// so rare classes are seen more often (P 1: a 2 % pair of glasses among six classes about
    /// 8×, a face with evenly drawn classes 1×). 0: off, every image once per epoch.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub oversample_rare: f64,
    #[arg(long, default_value_t = 0.5)]
    pub beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the run in --out from its checkpoint (its seed, batch size, Adam settings,
    /// architecture and recipe).
    #[arg(long)]
    pub resume: bool,
    /// Start from another run directory's checkpoint (weights, EMA, Adam moments, seed, step
    /// and epoch) with this command's recipe and Adam settings, writing to --out: a second stage
    /// of training (e.g. adding --classifier-weight). The architecture options and batch size
    /// must match the first stage's; the new checkpoint records where it started. A generator
    /// file (`export --safetensors`, e.g. a model in models/pretrained) instead starts G and its
    /// EMA from its weights, with a fresh D and fresh Adam states at step 0: fine-tuning a model
    /// whose run directory is gone.
    #[arg(long, value_name = "RUN_DIR|GENERATOR", conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Steps per metrics.csv row.
    #[arg(long, default_value_t = 50)]
    pub log_every: u64,
    /// Stop after this many steps (writes a checkpoint as Ctrl-C does).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// CPU kernels for convolutions, BatchNorm + activation and the Adam update.
    #[arg(long, alias = "conv", value_enum, default_value_t = KernelsArg::Fast)]
    pub kernels: KernelsArg,
    /// No progress bar (logs only).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    /// mnist-cdcgan, dcgan64 or all.
    #[arg(long, default_value = "all")]
    pub arch: String,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// CPU kernels: fast, candle, or both (alternating).
    #[arg(long, alias = "conv", value_enum, default_value_t = BenchKernels::Both)]
    pub kernels: BenchKernels,
}
