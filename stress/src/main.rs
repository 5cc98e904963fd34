use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
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
    let result = run(&cli.command).and_then(|summary| {
        let line = serde_json::to_string(&summary).map_err(|e| Error::Summary(e.into()))?;
        writeln!(std::io::stdout().lock(), "{line}").map_err(Error::Summary)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = format!("stressmix-stress {}: {error}", cli.command.kind());
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
