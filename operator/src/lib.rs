//! stressmix-operator: keeps the pods of every `Workload` matching its spec.
//!
//! [`reconcile`] is one reconcile as a pipeline: observe the caches, [`planner`] decides (pure: the
//! spec, the observed pods and the time make the actions), [`executor`] carries the plan out against
//! the API, [`status`] says what came of it; [`app`] wires watchers, leader election and the HTTP
//! endpoints.

pub mod app;
pub mod backoff;
pub mod cli;
pub mod desired;
pub mod executor;
pub mod hash;
pub mod inflight;
pub mod leader;
pub mod metrics;
pub mod observed;
pub mod planner;
pub mod podspec;
pub mod ready;
pub mod reconcile;
pub mod runs;
pub mod slim;
pub mod status;
pub mod text;
pub mod written;
