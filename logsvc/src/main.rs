//! `stressmix-logsvc`: serve the log service until SIGTERM/SIGINT, then finish in-flight
//! requests and queued writes before exiting.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use stressmix_logsvc::Config;
use stressmix_logsvc::http::{AppState, router};
use stressmix_logsvc::metrics::Metrics;
use stressmix_logsvc::store::{Db, RetentionPolicy};
use stressmix_logsvc::timefmt::now_ms;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
    if config.rollup_retention < config.raw_retention {
        bail!("--rollup-retention must not be shorter than --raw-retention");
    }
    let metrics = Arc::new(Metrics::default());
    let db = Arc::new(
        Db::open(&config, metrics.clone())
            .with_context(|| format!("opening database {}", config.db))?,
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %listener.local_addr()?, db = %config.db, "log service started");

    let retention = tokio::spawn(retention_loop(db.clone(), config.clone()));
    let state = AppState {
        db: db.clone(),
        metrics,
        config: Arc::new(config),
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    // In-flight requests have their answers; now let the writer finish what is queued.
    retention.abort();
    db.shutdown().await;
    tracing::info!("log service stopped");
    Ok(())
}

async fn retention_loop(db: Arc<Db>, config: Config) {
    let mut tick = tokio::time::interval(config.retention_interval.max(Duration::from_secs(1)));
    loop {
        tick.tick().await;
        let policy = RetentionPolicy {
            now_ms: now_ms(),
            raw: config.raw_retention,
            rollup: config.rollup_retention,
        };
        if let Err(e) = db.retention(policy).await {
            tracing::error!(error = %e, "retention pass failed");
        }
    }
}

async fn shutdown_signal() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
