//! `edge-runtime`: generate images from an exported GAN and show them as a kiosk. Each
//! subcommand lives in its own file.

mod bench;
mod cli;
mod generate;
mod kiosk;
mod soak;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    gan_cli::init_logging("info");
    let cli = Cli::parse();
    gan_cli::finish(
        match cli.command {
            Command::Generate(args) => generate::run(args),
            Command::Kiosk(args) => kiosk::run(args),
            Command::Soak(args) => soak::run(args),
            Command::Bench(args) => bench::run(args),
        }
        .map(|()| ExitCode::SUCCESS),
    )
}
