use anyhow::Context;
use clap::Parser;
use stressmix_agent::config::{Command, Config, LogFormat};
use stressmix_agent::load_module;
use stressmix_agent::loader::LiveKernel;
use tracing_subscriber::EnvFilter;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(Command::LoadModule(args)) = &config.command {
        let kernel = LiveKernel {
            lockdown_file: args.lockdown_file.clone(),
        };
        // Exit 0 whatever the outcome (the module init contract): the status file says why.
        load_module::run(&kernel, args);
        return Ok(());
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    stressmix_agent::run::run(config)
        .await
        .context("stressmix-agent failed")
}
