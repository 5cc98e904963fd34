//! Command line and environment configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use stressmix_api::duration::parse_positive;

/// SQLite `synchronous` level for the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Synchronous {
    /// fsync the WAL at every commit: an acknowledged batch survives power loss.
    Full,
    /// fsync only at checkpoints: survives a process crash, not power loss.
    Normal,
}

/// `stressmix-logsvc`: every flag can also come from the environment (`STRESSMIX_<NAME>`).
#[derive(Debug, Clone, Parser)]
#[command(name = "stressmix-logsvc", version, about)]
pub struct Config {
    /// Address to serve the API on.
    #[arg(long, env = "STRESSMIX_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,
    /// SQLite database file; `:memory:` keeps everything in memory (tests).
    #[arg(long, env = "STRESSMIX_DB", default_value = "stressmix-logsvc.db")]
    pub db: String,
    /// Bearer token required on POST /api/v1/readings (queries stay open for Grafana).
    #[arg(long, env = "STRESSMIX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Largest accepted request body.
    #[arg(long, env = "STRESSMIX_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How long raw readings are kept (e.g. 24h).
    #[arg(long, env = "STRESSMIX_RAW_RETENTION", default_value = "24h", value_parser = parse_positive)]
    pub raw_retention: Duration,
    /// How long 1-minute rollups (and batch ids) are kept.
    #[arg(long, env = "STRESSMIX_ROLLUP_RETENTION", default_value = "30d", value_parser = parse_positive)]
    pub rollup_retention: Duration,
    /// How often the retention task rolls up and deletes old rows.
    #[arg(long, env = "STRESSMIX_RETENTION_INTERVAL", default_value = "60s", value_parser = parse_positive)]
    pub retention_interval: Duration,
    /// WAL durability level.
    #[arg(long, env = "STRESSMIX_SYNCHRONOUS", value_enum, default_value_t = Synchronous::Full)]
    pub synchronous: Synchronous,
    /// Read-only SQLite connections for queries.
    #[arg(long, env = "STRESSMIX_READERS", default_value_t = 4)]
    pub readers: usize,
}

impl Config {
    /// A configuration for tests: in-memory database, loopback, defaults elsewhere.
    pub fn for_tests() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: ":memory:".into(),
            token: None,
            max_body_bytes: 16 * 1024 * 1024,
            raw_retention: Duration::from_secs(86_400),
            rollup_retention: Duration::from_secs(30 * 86_400),
            retention_interval: Duration::from_secs(60),
            synchronous: Synchronous::Full,
            readers: 2,
        }
    }
}
