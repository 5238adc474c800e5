//! `export`: a trained generator → ONNX (+ inference safetensors), optionally verified with
//! ONNX Runtime against candle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gan_export::{graph, macs, verify};
use gan_models::save_generator;
use prost::Message;

#[derive(Parser)]
#[command(
    name = "export",
    version,
    about = "Export a trained generator to ONNX (opset 17, BatchNorm folded) and safetensors",
    long_about = "Export a trained generator to ONNX (opset 17, BatchNorm folded) and safetensors.\n\n\
        Without --onnx or --safetensors, writes NAME.onnx and NAME.safetensors into the run directory.\n\n\
        Examples:\n  export --checkpoint runs/mnist --onnx models/mnist.onnx --verify\n  \
        export --checkpoint runs/mnist/checkpoint.safetensors --onnx g.onnx --safetensors g.safetensors"
)]
struct Cli {
    /// A run directory (its checkpoint.safetensors) or a checkpoint/generator safetensors file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Where to write the ONNX model.
    #[arg(long)]
    onnx: Option<PathBuf>,
    /// Where to write the inference generator safetensors (config in its metadata).
    #[arg(long)]
    safetensors: Option<PathBuf>,
    /// Model name in the metadata (default: architecture and dataset, e.g. mnist-cdcgan).
    #[arg(long)]
    name: Option<String>,
    /// Check the ONNX in ONNX Runtime against candle at N = 1, 3, 64 (fails above 1e-4).
    #[arg(long)]
    verify: bool,
    /// Seed for the verification inputs (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// The ONNX Runtime library (else ORT_DYLIB_PATH, else the place scripts/fetch-onnxruntime uses).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
}

fn default_dir(checkpoint: &Path) -> PathBuf {
    if checkpoint.is_dir() {
        checkpoint.to_path_buf()
    } else {
        checkpoint
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let loaded = gan_export::load(&cli.checkpoint)?;
    let name = cli
        .name
        .clone()
        .unwrap_or_else(|| loaded.config.architecture.name().to_string());
    let (onnx_path, st_path) = match (&cli.onnx, &cli.safetensors) {
        (None, None) => {
            let dir = default_dir(&cli.checkpoint);
            (
                Some(dir.join(format!("{name}.onnx"))),
                Some(dir.join(format!("{name}.safetensors"))),
            )
        }
        (o, s) => (o.clone(), s.clone()),
    };
    let model = graph::build_model(&loaded, &name)?;
    println!(
        "generator: {} multiply-accumulates per image (counted from the ONNX graph)",
        macs::graph_macs(&model)?
    );
    let bytes = model.encode_to_vec();
    if cli.verify {
        let seed = cli.seed.unwrap_or_else(rand::random);
        let results = verify::verify(
            &bytes,
            &loaded,
            &verify::DEFAULT_BATCHES,
            seed,
            cli.ort_lib.as_deref(),
        )
        .context("ONNX verification")?;
        for r in &results {
            println!(
                "verify N={:<3} max |candle - onnxruntime| = {:.3e}",
                r.batch, r.max_abs_diff
            );
        }
        println!("verify passed (seed {seed}, limit {:e})", verify::TOLERANCE);
    }
    if let Some(path) = &onnx_path {
        gan_export::write(path, &bytes)?;
        println!("wrote {} ({} bytes)", path.display(), bytes.len());
    }
    if let Some(path) = &st_path {
        save_generator(path, &loaded.generator, &loaded.config, &name)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    gan_cli::init_logging("warn");
    gan_cli::finish(run(Cli::parse()).map(|()| ExitCode::SUCCESS))
}
