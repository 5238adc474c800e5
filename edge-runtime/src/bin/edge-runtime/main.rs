//! `edge-runtime`: generate images from an exported GAN and show them as a kiosk.

mod cli;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use gan_edge_runtime::kiosk::KioskOptions;
use gan_edge_runtime::model::MAX_BATCH;
use gan_edge_runtime::session::{self, Inputs};
use gan_edge_runtime::{bench, render, soak};

use cli::{Cli, Command};

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
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
            let options = KioskOptions {
                interval: (interval > 0.0).then(|| Duration::from_secs_f64(interval)),
                walk: walk.then_some((fps, walk_steps)),
                seed: seed.unwrap_or_else(rand::random),
                frames,
            };
            let inputs = Inputs {
                http: (!no_http).then_some(http),
                stdin: !no_stdin,
            };
            let report = session::run(
                model.load()?,
                display.open()?,
                model.watch(),
                inputs,
                options,
            )?;
            tracing::info!(
                frames = report.frames,
                display_errors = report.display_errors,
                reloads = report.reloads,
                "kiosk stopped"
            );
        }
        Command::Soak {
            model,
            display,
            frames,
            report_every,
            max_growth_mib,
            seed,
        } => {
            let options = KioskOptions {
                interval: None,
                walk: None,
                seed,
                frames: None,
            };
            let mut kiosk = gan_edge_runtime::kiosk::Kiosk::new(
                std::sync::Arc::new(std::sync::Mutex::new(model.load()?)),
                display.open()?,
                options,
            );
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
        }
        Command::Bench { model, runs } => {
            let mut g = model.load()?;
            println!("| batch | runs | median ms per call | ms per image | images/s |");
            println!("|---|---|---|---|---|");
            for row in bench::bench(&mut g, &[1, 64], runs)? {
                println!(
                    "| {} | {} | {:.3} | {:.4} | {:.0} |",
                    row.batch,
                    row.runs,
                    row.median_s * 1e3,
                    row.median_s * 1e3 / row.batch as f64,
                    row.batch as f64 / row.median_s
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    gan_cli::init_logging("info");
    gan_cli::finish(run(Cli::parse()))
}
