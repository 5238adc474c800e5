//! `train`: trains a GAN with candle, scores generators, trains the digit judge, and
//! benchmarks the training step. Each subcommand lives in its own file.

mod bench;
mod classifier;
mod cli;
mod device;
mod eval;
mod train;

use std::process::ExitCode;

use clap::Parser;
use gan_models::kernels::process;

use cli::{BenchKernels, Cli, Command, KernelsArg};

fn main() -> ExitCode {
    process::keep_freed_memory();
    gan_cli::init_logging("info");
    let cli = Cli::parse();
    process::single_candle_pool(match &cli.command {
        Some(Command::Bench(args)) => args.kernels != BenchKernels::Fast,
        None => cli.train.kernels == KernelsArg::Candle,
        Some(Command::Classifier(_) | Command::Eval(_)) => false,
    });
    gan_cli::finish(match cli.command {
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Classifier(args)) => classifier::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        None => train::run(cli.train),
    })
}
