//! stressmix-operator: keeps the pods of every `Workload` matching its spec.
//!
//! [`planner`] is the pure decision (spec + observed pods + now -> actions); [`reconcile`] executes
//! it against the API; [`app`] wires watchers, leader election and the HTTP endpoints.

pub mod app;
pub mod backoff;
pub mod cli;
pub mod hash;
pub mod inflight;
pub mod leader;
pub mod metrics;
pub mod observed;
pub mod planner;
pub mod podspec;
pub mod ready;
pub mod reconcile;
pub mod slim;
pub mod status;
