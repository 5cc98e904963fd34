//! The labels on every stress pod: the operator sets them, the agent reads them to attribute
//! readings. One source for both (no `crd` feature needed).

/// Label on every stress pod: the name of its Workload.
pub const LABEL_WORKLOAD: &str = "stressmix.dev/workload";
/// Label on every stress pod: its stressor kind (`cpu`, `memory`, `io`, `disk`).
pub const LABEL_KIND: &str = "stressmix.dev/kind";
/// Label on every stress pod: its slot number within its Workload and kind (`0`, `1`, ...). A
/// slot's pods follow one another, so a slot whose pods keep failing is visible across them.
pub const LABEL_SLOT: &str = "stressmix.dev/slot";
/// Label on every stress pod: hash of the spec parts its pod was built from.
pub const LABEL_TEMPLATE_HASH: &str = "stressmix.dev/template-hash";
/// Standard label naming the operator that manages a pod.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] on stress pods.
pub const MANAGED_BY: &str = "stressmix-operator";
