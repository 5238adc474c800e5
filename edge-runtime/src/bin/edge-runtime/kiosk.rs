//! `edge-runtime kiosk`: the kiosk on a display, with its timer, keys and HTTP endpoint.

use std::time::Duration;

use anyhow::bail;
use gan_edge_runtime::kiosk::KioskOptions;
use gan_edge_runtime::session::{self, Inputs};

use crate::cli::KioskArgs;

pub fn run(args: KioskArgs) -> anyhow::Result<()> {
    let KioskArgs {
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
    } = args;
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
    Ok(())
}
