//! What the planner's table and property tests share: one Workload named `lab`, a fixed clock, and
//! the planner called with everything but the spec, the pods, the backoff and the creates in flight
//! fixed.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use stressmix_api::workload::StressKind;
use stressmix_operator::planner::{Create, KindDesire, ObservedPod, Plan, PlanInput, plan};

pub const LIFETIME: Duration = Duration::from_secs(150);
pub const STUCK: Duration = Duration::from_secs(30);

pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
}

/// The template hash the spec asks for, per kind.
pub fn hash(kind: StressKind) -> String {
    format!("hash-{kind}")
}

/// Plans Workload `lab` at [`now`].
pub fn plan_at(
    desired: &[KindDesire],
    pods: &[ObservedPod],
    backoff: &BTreeMap<String, SystemTime>,
    in_flight: &[Create],
) -> Plan {
    plan(&PlanInput {
        workload: "lab",
        desired,
        lifetime: LIFETIME,
        pods,
        now: now(),
        backoff,
        in_flight,
        stuck_after: STUCK,
    })
}
