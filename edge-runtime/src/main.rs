//! `edge-runtime`: generate images from an exported GAN and show them as a kiosk.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use gan_edge::display::{Display, DisplayOptions};
use gan_edge::kiosk::{self, Kiosk, KioskOptions};
use gan_edge::model::{Generator, MAX_BATCH};
use gan_edge::model_watch::ModelWatch;
use gan_edge::{http, keys, latent, render, soak};

#[derive(Parser)]
#[command(
    name = "edge-runtime",
    version,
    about = "Run an exported GAN generator (ONNX Runtime) and show its images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ModelArgs {
    /// The generator, as written by `export --onnx`.
    #[arg(long)]
    model: PathBuf,
    /// The ONNX Runtime library (else ORT_DYLIB_PATH, else the place scripts/fetch-onnxruntime uses).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Intra-op threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

impl ModelArgs {
    fn load(&self) -> anyhow::Result<Generator> {
        Ok(Generator::load(
            &self.model,
            self.ort_lib.as_deref(),
            self.threads,
        )?)
    }

    fn watch(&self) -> ModelWatch {
        ModelWatch::new(&self.model, self.ort_lib.as_deref(), self.threads)
    }
}

#[derive(Args)]
struct DisplayArgs {
    /// fb:/dev/fb0 | png:PATH (`{n}` numbers frames) | term | spi:... (feature spi)
    #[arg(long, default_value = "fb:/dev/fb0")]
    display: String,
    /// Geometry WxH for a framebuffer that is a plain file (testing, headless).
    #[arg(long)]
    fb_geometry: Option<String>,
    /// Pixel format of a file framebuffer: rgb565, xrgb8888, argb8888.
    #[arg(long, default_value = "rgb565")]
    fb_format: String,
    /// Canvas size WxH for png and term displays.
    #[arg(long)]
    size: Option<String>,
}

impl DisplayArgs {
    fn open(&self) -> anyhow::Result<Display> {
        Ok(Display::open(&DisplayOptions {
            spec: &self.display,
            fb_geometry: self.fb_geometry.as_deref(),
            fb_format: &self.fb_format,
            size: self.size.as_deref(),
        })?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Write a grid of generated images as PNG.
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        /// Number of images (1..=256).
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Class index for a conditional model (default: classes cycle across the grid).
        #[arg(long, conflicts_with = "label_name")]
        label: Option<usize>,
        /// Class by name (e.g. "7").
        #[arg(long)]
        label_name: Option<String>,
        /// Latent seed (default: random).
        #[arg(long)]
        seed: Option<u64>,
        /// Upscale factor of the PNG.
        #[arg(long, default_value_t = 1)]
        scale: u32,
        /// Output PNG path, or - for stdout.
        #[arg(long)]
        out: String,
    },
    /// Show images on a display, on demand (stdin keys, HTTP) and by timer. The model file is
    /// reloaded when it changes (and on `r`, POST /reload or SIGHUP); if it disappears or a new
    /// one does not load, the loaded model keeps running.
    Kiosk {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        display: DisplayArgs,
        /// Seconds between new images (0: only on demand).
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
        /// Morph smoothly between latent points (slerp) instead of jumping.
        #[arg(long)]
        walk: bool,
        /// Frames per second of --walk.
        #[arg(long, default_value_t = 10.0)]
        fps: f32,
        /// Frames between two latent points in --walk.
        #[arg(long, default_value_t = 30)]
        walk_steps: u32,
        #[arg(long)]
        seed: Option<u64>,
        /// Exit after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        /// HTTP address (loopback by default; use 0.0.0.0:8080 to expose it on purpose).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// No HTTP endpoint.
        #[arg(long)]
        no_http: bool,
        /// Ignore stdin (default: single keys from a terminal — 0-9 pick a digit, space/enter a new
        /// image, q quits — or the same as lines from a pipe).
        #[arg(long)]
        no_stdin: bool,
    },
    /// Run the kiosk's frame loop flat out and report resident memory and frame latency per
    /// window (exits non-zero if memory grows past --max-growth-mib after the first window).
    Soak {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        display: DisplayArgs,
        #[arg(long, default_value_t = 100_000)]
        frames: u64,
        /// Frames per report row.
        #[arg(long, default_value_t = 10_000)]
        report_every: u64,
        /// Allowed growth of resident memory from the first row to the last, MiB.
        #[arg(long, default_value_t = 4.0)]
        max_growth_mib: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Latency at batch 1 and throughput at batch 64, as a table.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Timed runs per row (the median is reported).
        #[arg(long, default_value_t = 200)]
        runs: usize,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate {
            model,
            count,
            label,
            label_name,
            seed,
            scale,
            out,
        } => {
            if count == 0 || count > MAX_BATCH {
                bail!("--count must be 1..={MAX_BATCH}, got {count}");
            }
            if !(1..=64).contains(&scale) {
                bail!("--scale must be 1..=64");
            }
            let mut g = model.load()?;
            let label = match (label, label_name) {
                (Some(l), _) => Some(g.info.class_index(&l.to_string())?),
                (None, Some(name)) => Some(g.info.class_index(&name)?),
                (None, None) => None,
            };
            let seed = seed.unwrap_or_else(rand::random);
            let png = render::grid_png(&mut g, count, label, seed, scale)?;
            if out == "-" {
                std::io::stdout()
                    .lock()
                    .write_all(&png)
                    .context("writing PNG to stdout")?;
            } else {
                gan_grid::atomic::atomic_write(std::path::Path::new(&out), &png)
                    .with_context(|| format!("cannot write {out}"))?;
                eprintln!("wrote {out} ({count} images, seed {seed})");
            }
            Ok(())
        }
        Command::Kiosk {
            model,
            display,
            interval,
            walk,
            fps,
            walk_steps,
            seed,
            frames,
            http,
            no_http,
            no_stdin,
        } => {
            if !interval.is_finite() || interval < 0.0 {
                bail!("--interval must be a non-negative number of seconds");
            }
            let generator = Arc::new(Mutex::new(model.load()?));
            let display = display.open()?;
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(signal, Arc::clone(&stop))
                    .context("installing signal handlers")?;
            }
            let (tx, rx) = kiosk::channel();
            let mut hangups = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
                .context("installing the SIGHUP handler")?;
            let reload = tx.clone();
            std::thread::spawn(move || {
                for _ in hangups.forever() {
                    if reload.send(kiosk::Event::Reload).is_err() {
                        break;
                    }
                }
            });
            if !no_http {
                let server = tiny_http::Server::http(&http)
                    .map_err(|e| anyhow::anyhow!("cannot listen on {http}: {e}"))?;
                tracing::info!("HTTP on http://{http}/");
                let (g, tx) = (Arc::clone(&generator), tx.clone());
                std::thread::spawn(move || http::serve(Arc::new(server), g, tx));
            }
            // Restores the terminal when the kiosk returns, whatever the reader thread is doing.
            let raw_mode = if no_stdin {
                None
            } else {
                keys::RawMode::enable()
            };
            if !no_stdin {
                let (g, tx, raw) = (Arc::clone(&generator), tx.clone(), raw_mode.is_some());
                std::thread::spawn(move || keys::stdin_events(tx, g, raw));
            }
            drop(tx);
            let options = KioskOptions {
                interval: (interval > 0.0).then(|| Duration::from_secs_f64(interval)),
                walk: walk.then_some((fps, walk_steps)),
                seed: seed.unwrap_or_else(rand::random),
                frames,
            };
            let mut kiosk = Kiosk::new(generator, display, options);
            kiosk.watch_model(model.watch());
            kiosk.run(rx, &stop)?;
            tracing::info!(
                frames = kiosk.frames_shown,
                display_errors = kiosk.display_errors,
                reloads = kiosk.reloads,
                "kiosk stopped"
            );
            Ok(())
        }
        Command::Soak {
            model,
            display,
            frames,
            report_every,
            max_growth_mib,
            seed,
        } => {
            let generator = Arc::new(Mutex::new(model.load()?));
            let options = KioskOptions {
                interval: None,
                walk: None,
                seed,
                frames: None,
            };
            let mut kiosk = Kiosk::new(generator, display.open()?, options);
            kiosk.watch_model(model.watch());
            println!("| frames | RSS MiB | p50 ms | p99 ms | max ms | display errors | reloads |");
            println!("|---|---|---|---|---|---|---|");
            let started = Instant::now();
            let rows = soak::soak(&mut kiosk, frames, report_every, |r| {
                println!(
                    "| {} | {:.1} | {:.3} | {:.3} | {:.3} | {} | {} |",
                    r.frames, r.rss_mib, r.p50_ms, r.p99_ms, r.max_ms, r.display_errors, r.reloads
                );
            })?;
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                bail!("--frames must be at least 1");
            };
            let growth = last.rss_mib - first.rss_mib;
            println!(
                "{} frames in {:.1} s; RSS {:.1} → {:.1} MiB (growth {:+.2} MiB after the first window)",
                last.frames,
                started.elapsed().as_secs_f64(),
                first.rss_mib,
                last.rss_mib,
                growth
            );
            if growth > max_growth_mib {
                bail!("resident memory grew {growth:.2} MiB (limit {max_growth_mib} MiB)");
            }
            Ok(())
        }
        Command::Bench { model, runs } => {
            let mut g = model.load()?;
            let dim = g.info.latent_dim;
            println!("| batch | runs | median ms per call | ms per image | images/s |");
            println!("|---|---|---|---|---|");
            for batch in [1usize, 64] {
                let z = latent::sample(1, batch, dim);
                let labels: Vec<i64> = (0..batch)
                    .map(|i| (i % g.info.num_classes().max(1)) as i64)
                    .filter(|_| g.info.num_classes() > 0)
                    .collect();
                for _ in 0..10 {
                    g.generate(&z, &labels)?;
                }
                let mut times: Vec<f64> = (0..runs.max(1))
                    .map(|_| {
                        let t = Instant::now();
                        g.generate(&z, &labels).map(|_| t.elapsed().as_secs_f64())
                    })
                    .collect::<Result<_, _>>()?;
                times.sort_by(f64::total_cmp);
                let median = times[times.len() / 2];
                println!(
                    "| {batch} | {} | {:.3} | {:.4} | {:.0} |",
                    times.len(),
                    median * 1e3,
                    median * 1e3 / batch as f64,
                    batch as f64 / median
                );
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
