//! The `arbor-origin` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::config::{self, Config, LogFormat};

/// Arbor origin: the REST API `/v1`, meeting placement and the edge registry.
#[derive(Debug, Parser)]
#[command(name = "arbor-origin", version)]
struct Args {
    /// TOML configuration file. Without it the embedded development defaults are used.
    /// Environment variables `ARBOR_ORIGIN_<SECTION>_<KEY>` override both.
    #[arg(long, short = 'c', env = "ARBOR_ORIGIN_CONFIG")]
    config: Option<PathBuf>,
    /// Only load and validate the configuration, print the verdict and exit (0 ok, 2 not).
    #[arg(long)]
    check_config: bool,
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config::load(args.config.as_deref(), config::process_env()).and_then(|c| {
        c.validate()?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("arbor-origin: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("config ok");
        return ExitCode::SUCCESS;
    }
    init_tracing(&cfg);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("origin")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arbor-origin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(crate::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arbor-origin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
