//! The start and end every binary of the toolkit shares, so `train`, `export` and
//! `edge-runtime` log and fail alike.

use std::io::IsTerminal;
use std::process::ExitCode;

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (else `default_filter`, e.g.
/// `info`), coloured only on a terminal.
pub fn init_logging(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The process's exit: `error: …` with every cause on stderr and exit code 1 on failure.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
