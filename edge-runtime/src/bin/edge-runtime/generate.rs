//! `edge-runtime generate`: a grid of generated images as one PNG, to a file or stdout.

use std::io::Write;

use anyhow::{bail, Context};
use gan_edge_runtime::model::MAX_BATCH;
use gan_edge_runtime::render;

use crate::cli::GenerateArgs;

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let GenerateArgs {
        model,
        count,
        label,
        label_name,
        seed,
        scale,
        out,
    } = args;
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
