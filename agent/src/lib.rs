//! stressmix-agent: reads per-cgroup counters (kernel module or cgroupfs), turns them into rates,
//! attributes them to pods and ships numbered batches to the log service.

pub mod attribution;
pub mod buffer;
pub mod cgroup_path;
pub mod collector;
pub mod config;
pub mod container_metrics;
pub mod load_module;
pub mod loader;
pub mod metrics;
pub mod modinfo;
pub mod module_status;
pub mod oom;
pub mod rates;
pub mod run;
pub mod shipper;
pub mod source;
