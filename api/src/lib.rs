//! Shared types of stressmix: the Workload CRD, the kernel module document, the reading batches.
pub mod duration;
pub mod kmod;
pub mod labels;
pub mod readings;
pub mod run_summary;
#[cfg(feature = "crd")]
pub mod workload;
