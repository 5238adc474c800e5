//! `edge-runtime generate`: a grid of generated images as one PNG, to a file or stdout.

use std::io::Write;

use anyhow::{bail, Context};
use gan_edge_runtime::ask::{self, Ask};
use gan_edge_runtime::model::MAX_BATCH;
use gan_edge_runtime::render;

use crate::cli::GenerateArgs;

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let GenerateArgs {
        model,
        count,
        label,
        label_name,
        attributes,
        seed,
        scale,
        columns,
        out,
    } = args;
    if count == 0 || count > MAX_BATCH {
        bail!("--count must be 1..={MAX_BATCH}, got {count}");
    }
    if !(1..=64).contains(&scale) {
        bail!("--scale must be 1..=64");
    }
    if columns.is_some_and(|c| c == 0 || c > count) {
        bail!("--columns must be 1..=--count ({count})");
    }
    let mut g = model.load()?;
    let label = label.map(|l| l.to_string()).or(label_name);
    let pairs = ask::pairs(&attributes).map_err(anyhow::Error::msg)?;
    let ask = Ask::parse(&g.info, label.as_deref(), pairs)?;
    let seed = seed.unwrap_or_else(rand::random);
    let png = render::grid_png(&mut g, count, &ask, seed, scale, columns)?;
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
