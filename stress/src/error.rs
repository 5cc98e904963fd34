//! The one error type of the stress program.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot install SIGTERM/SIGINT handlers")]
    Signals(#[source] io::Error),
    #[error("cannot start a worker thread")]
    Spawn(#[source] io::Error),
    #[error("a worker thread panicked")]
    WorkerPanicked,
    #[error(
        "--bytes {bytes} cannot be split across {workers} workers (each needs at least 1 byte)"
    )]
    BytesBelowWorkers { bytes: u64, workers: usize },
    #[error("memory worker {worker} cannot allocate {bytes} bytes")]
    Allocate { worker: usize, bytes: u64 },
    #[error("cannot {op} {}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read-back of {} differs from what was written, at byte {offset}", path.display())]
    Corrupt { path: PathBuf, offset: u64 },
    #[error("cannot measure {what}")]
    Measure {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the summary")]
    Summary(#[source] io::Error),
}

impl Error {
    pub(crate) fn file(op: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Error::File { op, path, source }
    }
}
