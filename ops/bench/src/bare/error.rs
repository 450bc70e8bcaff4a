//! Why the bare forwarder, its feeder, its sinks or a measurement could not start or finish.

use std::io;

use thiserror::Error;

use super::srtp::SrtpError;
use crate::cpu::CpuError;

/// Why a part of the bare bench could not run.
#[derive(Debug, Error)]
pub enum Error {
    /// A socket or thread could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Keys the SRTP code refused.
    #[error("SRTP: {0}")]
    Srtp(#[from] SrtpError),
    /// The forwarder thread's CPU time could not be read.
    #[error("CPU time: {0}")]
    Cpu(#[from] CpuError),
    /// More of something than the named limit allows.
    #[error("{what}: {count} is more than the limit of {limit}")]
    Limit {
        /// What was counted.
        what: &'static str,
        /// How many were asked for.
        count: usize,
        /// The named limit.
        limit: usize,
    },
    /// A configuration that cannot run.
    #[error("{0}")]
    Config(&'static str),
    /// A worker thread panicked (a bug, reported instead of re-raised).
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

impl Error {
    /// A closure for `map_err` naming what failed.
    pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { what, source }
    }
}
