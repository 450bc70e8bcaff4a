//! The `arbor` CLI: local clusters (`arbor up`), access tokens (`arbor token`), a UDP
//! impairment proxy (`arbor impair`), synthetic load (`arbor load`) and draining an edge
//! (`arbor edge drain`).
//!
//! [`main`] parses the command line and runs one command; each command is a module with a
//! `run` function that tests call directly.

pub mod bench;
pub mod cli;
pub mod cluster;
pub mod edge;
pub mod impair;
pub mod load;
pub mod token;
pub mod up;

use std::process::ExitCode;

use clap::Parser as _;

/// Parses `std::env::args`, runs the command, prints any error with its causes.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Token(args) => {
            let token = token::run(&args, &cli.data_dir, std::time::SystemTime::now())?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Up(args) => up::run(&args, &cli.data_dir),
        cli::Command::Impair(args) => impair::run(&args),
        cli::Command::Load(args) => load::run(&args, &cli.data_dir),
        cli::Command::Bench(args) => bench::run(&args, &cli.data_dir),
        cli::Command::Edge(args) => edge::run(&args, &cli.data_dir),
    }
}

#[cfg(test)]
mod test_util {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, unique per call.
    pub(crate) fn tempdir() -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "arbor-ops-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
