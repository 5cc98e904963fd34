//! stressmix log service: accepts reading batches from the node agents, stores them durably in
//! SQLite (WAL, one writer thread with group commit), answers the Grafana Infinity queries, keeps
//! the legacy `/data` contract, and bounds its own size with rollups and retention.

pub mod config;
pub mod http;
pub mod metrics;
pub mod store;
pub mod timefmt;

pub use config::Config;
