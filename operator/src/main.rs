//! Entry point: parse flags, set up JSON logs, run until SIGTERM.

use clap::Parser;
use stressmix_operator::app;
use stressmix_operator::cli::Cli;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stdout)
        .init();
    match app::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "stressmix-operator failed");
            std::process::ExitCode::FAILURE
        }
    }
}
