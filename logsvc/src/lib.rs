//! stressmix log service: accepts reading batches from the node agents, stores them durably in
//! SQLite (WAL, one writer thread with group commit), answers the Grafana Infinity queries, keeps
//! the legacy `/data` contract, and bounds its own size with rollups and retention.

pub mod config;
pub mod http;
pub mod metrics;
pub mod store;
pub mod timefmt;

pub use config::Config;

/// Every batch allocates thousands of short strings (labels per container) and frees them after
/// its commit; mimalloc's thread-local free lists serve that pattern at a fraction of glibc
/// malloc's cost (`docs/benchmarks.md`, issue 14). Declared in the library so that the service,
/// its tests and its benchmark run on the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
