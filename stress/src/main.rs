use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use stressmix_api::run_summary::MAX_TERMINATION_MESSAGE;
use stressmix_stress::{Cli, Error, run};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let summary_file = cli.command.run_args().summary_file.clone();
    let result = run(&cli.command).and_then(|summary| {
        let line = serde_json::to_string(&summary).map_err(|e| Error::Summary(e.into()))?;
        writeln!(std::io::stdout().lock(), "{line}").map_err(Error::Summary)?;
        Ok(line)
    });
    let (code, report) = match result {
        Ok(line) => (ExitCode::SUCCESS, line),
        Err(error) => {
            let mut message = format!("stressmix-stress {}: {error}", cli.command.kind());
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("error: {message}");
            (ExitCode::FAILURE, format!("error: {message}"))
        }
    };
    if let Some(path) = summary_file {
        write_summary_file(&path, &report);
    }
    code
}

/// The run's outcome as its termination message. A failure to write it is said on stderr and does
/// not change the run's exit code: the run itself is what the code reports.
fn write_summary_file(path: &Path, report: &str) {
    let mut end = report.len().min(MAX_TERMINATION_MESSAGE);
    while !report.is_char_boundary(end) {
        end -= 1;
    }
    if let Err(e) = std::fs::write(path, &report[..end]) {
        eprintln!("error: cannot write the summary to {}: {e}", path.display());
    }
}
