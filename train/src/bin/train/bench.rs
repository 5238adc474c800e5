//! `train bench`: training images/s of the reference architectures, as a table.

use std::process::ExitCode;

use gan_models::kernels::cpu::CpuInfo;
use gan_models::kernels::Kernels;
use gan_models::Architecture;
use gan_train::training::bench;

use crate::cli::{BenchArgs, BenchKernels};

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let device = crate::device::open(args.device)?;
    let names: Vec<&str> = match args.arch.as_str() {
        "all" => vec!["mnist-cdcgan", "dcgan64"],
        one => vec![one],
    };
    let kernels: &[Kernels] = match args.kernels {
        BenchKernels::Both => &[Kernels::Candle, Kernels::Fast],
        BenchKernels::Fast => &[Kernels::Fast],
        BenchKernels::Candle => &[Kernels::Candle],
    };
    println!("{}", CpuInfo::detect());
    println!("| architecture | kernels | batch | timed steps | train images/s (median) |");
    println!("|---|---|---|---|---|");
    for name in names {
        let channels = if name == "dcgan64" { 3 } else { 1 };
        let arch = Architecture::from_name(name, channels)?;
        for &k in kernels {
            let row = bench::bench(&arch, k, args.batch_size, args.warmup, args.steps, &device)?;
            println!(
                "| {} | {:?} | {} | {} | {:.1} |",
                row.architecture, k, row.batch, row.steps, row.images_per_s
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
