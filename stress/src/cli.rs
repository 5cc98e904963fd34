//! Command line of `stressmix-stress` (fixed by docs/contracts: the operator builds these arguments).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "stressmix-stress",
    version,
    about = "Consume CPU, memory, synced small writes or disk bandwidth for a while, then print a JSON summary"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Spin `--workers` threads, each busy `--load` percent of every 100 ms.
    Cpu(CpuArgs),
    /// Allocate `--bytes` (split across workers), touch every page and keep it resident.
    Memory(MemoryArgs),
    /// Write 4 KiB blocks, each followed by fdatasync, in `--dir`.
    Io(IoArgs),
    /// Write `--bytes` of files (split across workers) in `--dir`, fsync, read back, verify, delete; repeat.
    Disk(DiskArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Seconds to run; 0 runs until SIGTERM or SIGINT.
    #[arg(long, value_name = "SECONDS")]
    pub duration: u64,
    /// Also write the summary (or, when the run fails, the error) to this file, cut to 4 KiB: the
    /// container's termination message (`/dev/termination-log`), which the operator reads back.
    #[arg(long, value_name = "PATH")]
    pub summary_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Workers {
    /// Worker threads.
    #[arg(long = "workers", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub count: u16,
}

#[derive(Debug, Args)]
pub struct CpuArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub workers: Workers,
    /// Percent of one core each worker keeps busy.
    #[arg(long, value_name = "PERCENT", default_value_t = 100,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub load: u8,
}

#[derive(Debug, Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub workers: Workers,
    /// Total bytes to hold resident (a plain integer), split across the workers.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub bytes: u64,
}

#[derive(Debug, Args)]
pub struct IoArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub workers: Workers,
    /// Directory to write in (the only place written).
    #[arg(long, value_name = "PATH", default_value = "/scratch")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct DiskArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub workers: Workers,
    /// Total bytes of files written per round (a plain integer), split across the workers.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub bytes: u64,
    /// Directory to write in (the only place written).
    #[arg(long, value_name = "PATH", default_value = "/scratch")]
    pub dir: PathBuf,
}

impl Command {
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Cpu(_) => "cpu",
            Command::Memory(_) => "memory",
            Command::Io(_) => "io",
            Command::Disk(_) => "disk",
        }
    }

    pub fn run_args(&self) -> &RunArgs {
        match self {
            Command::Cpu(a) => &a.run,
            Command::Memory(a) => &a.run,
            Command::Io(a) => &a.run,
            Command::Disk(a) => &a.run,
        }
    }

    pub fn workers(&self) -> usize {
        let workers = match self {
            Command::Cpu(a) => &a.workers,
            Command::Memory(a) => &a.workers,
            Command::Io(a) => &a.workers,
            Command::Disk(a) => &a.workers,
        };
        usize::from(workers.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_operator_command_lines() {
        let cli = Cli::try_parse_from([
            "stressmix-stress",
            "disk",
            "--duration",
            "30",
            "--bytes",
            "1048576",
            "--workers",
            "2",
        ])
        .expect("valid disk command line");
        let Command::Disk(disk) = &cli.command else {
            panic!("not disk: {cli:?}")
        };
        assert_eq!(disk.bytes, 1_048_576);
        assert_eq!(disk.dir, PathBuf::from("/scratch"));
        assert_eq!(cli.command.workers(), 2);
        assert_eq!(cli.command.run_args().duration, 30);

        let cli =
            Cli::try_parse_from(["stressmix-stress", "cpu", "--duration", "0"]).expect("valid cpu");
        let Command::Cpu(cpu) = &cli.command else {
            panic!("not cpu: {cli:?}")
        };
        assert_eq!((cpu.load, cli.command.workers()), (100, 1));
    }
}
