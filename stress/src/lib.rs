//! `stressmix-stress`: the program a stressmix Workload pod runs. One module per stressor;
//! [`run`] drives one of them until its duration or a signal ends it and returns the summary.

pub mod cli;
mod cpu;
mod disk;
mod error;
mod io;
mod memory;
mod scratch;
mod stop;
mod summary;
mod workers;

use std::time::{Duration, Instant};

pub use cli::{Cli, Command};
pub use error::Error;
pub use stop::Stop;
pub use summary::{Consumed, Summary};

/// Runs the stressor `command` names, stopping at `--duration` (0: never) or on SIGTERM/SIGINT.
pub fn run(command: &Command) -> Result<Summary, Error> {
    let seconds = command.run_args().duration;
    // The process may have used CPU before the run: the container runtime's setup runs in this
    // process before exec, and this program starts up. That is not the run's work.
    let (cpu_before, _) = summary::process_usage()?;
    let started = Instant::now();
    let stop = Stop::new((seconds > 0).then(|| Duration::from_secs(seconds)));
    stop.on_signals()?;
    tracing::info!(
        kind = command.kind(),
        workers = command.workers(),
        duration_seconds = seconds,
        "starting"
    );
    let (consumed, held) = match command {
        Command::Cpu(args) => (cpu::run(args, &stop)?, Vec::new()),
        Command::Memory(args) => memory::run(args, &stop)?,
        Command::Io(args) => (io::run(args, &stop)?, Vec::new()),
        Command::Disk(args) => (disk::run(args, &stop)?, Vec::new()),
    };
    let duration_seconds = started.elapsed().as_secs_f64();
    let resident_bytes = summary::resident_bytes()?;
    drop(held);
    let (cpu_after, max_resident_bytes) = summary::process_usage()?;
    let cpu_seconds = (cpu_after - cpu_before).max(0.0);
    Ok(Summary {
        kind: command.kind().to_owned(),
        workers: command.workers(),
        duration_seconds,
        stopped_by_signal: stop.stopped_by_signal(),
        cpu_seconds,
        resident_bytes,
        max_resident_bytes,
        consumed,
    })
}
