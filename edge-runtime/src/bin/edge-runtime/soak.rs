//! `edge-runtime soak`: the kiosk's frame loop flat out, resident memory and latency per window.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::bail;
use gan_edge_runtime::kiosk::{Kiosk, KioskOptions};
use gan_edge_runtime::soak;

use crate::cli::SoakArgs;

pub fn run(args: SoakArgs) -> anyhow::Result<()> {
    let SoakArgs {
        model,
        display,
        frames,
        report_every,
        max_growth_mib,
        seed,
    } = args;
    let options = KioskOptions {
        interval: None,
        walk: None,
        seed,
        frames: None,
    };
    let mut kiosk = Kiosk::new(
        Arc::new(Mutex::new(model.load()?)),
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
    Ok(())
}
