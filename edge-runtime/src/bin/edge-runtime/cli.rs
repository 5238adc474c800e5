//! `edge-runtime`'s command line: every subcommand and flag, with its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gan_edge_runtime::display::{Display, DisplayOptions};
use gan_edge_runtime::model::Generator;
use gan_edge_runtime::model_watch::ModelWatch;
use gan_edge_runtime::EdgeError;

#[derive(Parser)]
#[command(
    name = "edge-runtime",
    version,
    about = "Run an exported GAN generator (ONNX Runtime) and show its images"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct ModelArgs {
    /// The generator, as written by `export --onnx`.
    #[arg(long)]
    pub model: PathBuf,
    /// The ONNX Runtime library (else ORT_DYLIB_PATH, else the place scripts/fetch-onnxruntime uses).
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
    /// Intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl ModelArgs {
    pub fn load(&self) -> anyhow::Result<Generator> {
        Ok(Generator::load(
            &self.model,
            self.ort_lib.as_deref(),
            self.threads,
        )?)
    }

    pub fn watch(&self) -> ModelWatch {
        ModelWatch::new(&self.model, self.ort_lib.as_deref(), self.threads)
    }
}

#[derive(Args)]
pub struct DisplayArgs {
    /// fb:/dev/fb0 | png:PATH (`{n}` numbers frames) | term | spi:... (feature spi) | window
    /// (feature window)
    #[arg(long, default_value = "fb:/dev/fb0")]
    pub display: String,
    /// Geometry WxH for a framebuffer that is a plain file (testing, headless).
    #[arg(long)]
    pub fb_geometry: Option<String>,
    /// Pixel format of a file framebuffer: rgb565, xrgb8888, argb8888.
    #[arg(long, default_value = "rgb565")]
    pub fb_format: String,
    /// Canvas size WxH for png, term and window displays.
    #[arg(long)]
    pub size: Option<String>,
}

impl DisplayArgs {
    pub fn open(&self) -> anyhow::Result<Display> {
        match Display::open(&DisplayOptions {
            spec: &self.display,
            fb_geometry: self.fb_geometry.as_deref(),
            fb_format: &self.fb_format,
            size: self.size.as_deref(),
        }) {
            Err(e @ EdgeError::NotAFramebuffer { .. }) => Err(anyhow::Error::new(e).context(
                "for a plain file as framebuffer, pass --fb-geometry WxH --fb-format FORMAT",
            )),
            display => Ok(display?),
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Write a grid of generated images as PNG.
    Generate(GenerateArgs),
    /// Show images on a display, on demand (stdin keys, HTTP) and by timer. The model file is
    /// reloaded when it changes (and on `r`, POST /reload or SIGHUP); if it disappears or a new
    /// one does not load, the loaded model keeps running.
    Kiosk(KioskArgs),
    /// Run the kiosk's frame loop flat out and report resident memory and frame latency per
    /// window (exits non-zero if memory grows past --max-growth-mib after the first window).
    Soak(SoakArgs),
    /// Latency at batch 1 and throughput at batch 64, as a table.
    Bench(BenchArgs),
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of images (1..=256).
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Class index for a conditional model (default: classes cycle across the grid).
    #[arg(long, conflicts_with = "label_name")]
    pub label: Option<usize>,
    /// Class by name (e.g. "7").
    #[arg(long)]
    pub label_name: Option<String>,
    /// An attribute of an attribute-conditional model, as name=class (repeatable, e.g.
    /// `--attr hair=long03 --attr glasses=none`); the attributes not given are drawn per image
    /// from their training frequencies. An unknown name or class is refused with the valid ones.
    #[arg(long = "attr", value_name = "NAME=CLASS")]
    pub attributes: Vec<String>,
    /// Latent seed (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Upscale factor of the PNG.
    #[arg(long, default_value_t = 1)]
    pub scale: u32,
    /// Images per row of the grid (default: one row per digit class when the classes cycle,
    /// else a square); `--columns N --count N` gives one row, e.g. of one request.
    #[arg(long)]
    pub columns: Option<usize>,
    /// Output PNG path, or - for stdout.
    #[arg(long)]
    pub out: String,
}

#[derive(Args)]
pub struct KioskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub display: DisplayArgs,
    /// Seconds between new images (0: only on demand).
    #[arg(long, default_value_t = 5.0)]
    pub interval: f64,
    /// Morph smoothly between latent points (slerp) instead of jumping.
    #[arg(long)]
    pub walk: bool,
    /// Frames per second of --walk.
    #[arg(long, default_value_t = 10.0)]
    pub fps: f32,
    /// Frames between two latent points in --walk.
    #[arg(long, default_value_t = 30)]
    pub walk_steps: u32,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Exit after this many frames.
    #[arg(long)]
    pub frames: Option<u64>,
    /// HTTP address (loopback by default; use 0.0.0.0:8080 to expose it on purpose).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,
    /// No HTTP endpoint.
    #[arg(long)]
    pub no_http: bool,
    /// Ignore stdin (default: single keys from a terminal — 0-9 pick a digit, space/enter a new
    /// image, q quits — or the same as lines from a pipe).
    #[arg(long)]
    pub no_stdin: bool,
}

#[derive(Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub display: DisplayArgs,
    #[arg(long, default_value_t = 100_000)]
    pub frames: u64,
    /// Frames per report row.
    #[arg(long, default_value_t = 10_000)]
    pub report_every: u64,
    /// Allowed growth of resident memory from the first row to the last, MiB.
    #[arg(long, default_value_t = 4.0)]
    pub max_growth_mib: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Timed runs per row (the median is reported).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
}
