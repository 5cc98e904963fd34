//! Per-slot failure backoff: a slot whose pod failed waits before its replacement, doubling each
//! consecutive failure up to a cap, and starts over once a pod in that slot succeeds or gets ready.
//! Records are kept per Workload and dropped with it, so no record outlives its Workload.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use stressmix_api::workload::StressKind;

use crate::planner::{Delete, DeleteReason, ObservedPod, Phase, slot_name};

/// `(namespace, name)` of a Workload.
pub type WorkloadKey = (String, String);

/// One slot's failures.
#[derive(Debug, Clone)]
struct Record {
    /// Consecutive failures.
    failures: u32,
    /// No replacement before this time.
    not_before: SystemTime,
    /// UID of the last failed pod, so one failed pod seen twice counts once.
    last_uid: String,
}

/// Backoff state of every slot that failed recently, per Workload, keyed by slot name
/// ([`slot_name`]; the pod name for a pod outside the slots).
#[derive(Debug)]
pub struct SlotBackoff {
    base: Duration,
    cap: Duration,
    workloads: HashMap<WorkloadKey, BTreeMap<String, Record>>,
}

impl SlotBackoff {
    /// A tracker whose first wait is `base`, doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            workloads: HashMap::new(),
        }
    }

    /// Upkeep before planning: a slot whose pod got ready or finished its run starts over. Returns
    /// the slots' not-before times, as the planner reads them.
    pub fn observe(
        &mut self,
        namespace: &str,
        workload: &str,
        pods: &[ObservedPod],
    ) -> BTreeMap<String, SystemTime> {
        let key = workload_key(namespace, workload);
        let Some(slots) = self.workloads.get_mut(&key) else {
            return BTreeMap::new();
        };
        for pod in pods
            .iter()
            .filter(|p| p.ready || p.phase == Phase::Succeeded)
        {
            slots.remove(&slot_key(workload, pod.kind, pod.slot, &pod.name));
        }
        let not_before = slots
            .iter()
            .map(|(slot, r)| (slot.clone(), r.not_before))
            .collect();
        if slots.is_empty() {
            self.workloads.remove(&key);
        }
        not_before
    }

    /// Upkeep after planning: every failed pod the plan deletes puts its slot in backoff. Returns
    /// `<pod> (next try in <n>s)` for each, for the Workload's event.
    pub fn record_failures(
        &mut self,
        namespace: &str,
        workload: &str,
        deletes: &[Delete],
        now: SystemTime,
    ) -> Vec<String> {
        deletes
            .iter()
            .filter(|d| d.reason == DeleteReason::Failed)
            .map(|d| {
                let slot = slot_key(workload, d.kind, d.slot, &d.name);
                let wait = self.failed(namespace, workload, &slot, &d.uid, now);
                format!("{} (next try in {}s)", d.name, wait.as_secs())
            })
            .collect()
    }

    /// Records that the pod `uid` of `slot` failed at `now`; returns how long the slot waits. The same
    /// pod reported again does not count twice.
    pub fn failed(
        &mut self,
        namespace: &str,
        workload: &str,
        slot: &str,
        uid: &str,
        now: SystemTime,
    ) -> Duration {
        let (base, cap) = (self.base, self.cap);
        let slots = self
            .workloads
            .entry(workload_key(namespace, workload))
            .or_default();
        if let Some(r) = slots.get(slot)
            && r.last_uid == uid
        {
            return r.not_before.duration_since(now).unwrap_or(Duration::ZERO);
        }
        let failures = slots.get(slot).map_or(0, |r| r.failures).saturating_add(1);
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        let wait = base.saturating_mul(factor).min(cap);
        slots.insert(
            slot.to_owned(),
            Record {
                failures,
                not_before: now + wait,
                last_uid: uid.to_owned(),
            },
        );
        wait
    }

    /// Consecutive failures of `slot` (0 when it is not backing off).
    pub fn failures(&self, namespace: &str, workload: &str, slot: &str) -> u32 {
        self.workloads
            .get(&workload_key(namespace, workload))
            .and_then(|slots| slots.get(slot))
            .map_or(0, |r| r.failures)
    }

    /// Drops every record of a deleted Workload.
    pub fn forget_workload(&mut self, namespace: &str, workload: &str) {
        self.workloads.remove(&workload_key(namespace, workload));
    }

    /// Keeps only the records of Workloads for which `live` holds (after a relist, whose deletes
    /// arrive as no event).
    pub fn retain_workloads(&mut self, live: impl Fn(&str, &str) -> bool) {
        self.workloads.retain(|(ns, name), _| live(ns, name));
    }

    /// Slots tracked, over all Workloads.
    pub fn len(&self) -> usize {
        self.workloads.values().map(BTreeMap::len).sum()
    }

    /// No slot is tracked.
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
    }
}

fn workload_key(namespace: &str, workload: &str) -> WorkloadKey {
    (namespace.to_owned(), workload.to_owned())
}

/// The backoff key of a pod: its slot (both of a slot's names share one backoff), or its own name
/// for a pod outside the slots.
fn slot_key(workload: &str, kind: Option<StressKind>, slot: Option<u32>, pod: &str) -> String {
    match (kind, slot) {
        (Some(kind), Some(slot)) => slot_name(workload, kind, slot),
        _ => pod.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1000)
    }

    fn failed_pod(name: &str, uid: &str, slot: u32) -> Delete {
        Delete {
            name: name.to_owned(),
            uid: uid.to_owned(),
            kind: Some(StressKind::Cpu),
            slot: Some(slot),
            reason: DeleteReason::Failed,
        }
    }

    fn ready_pod(name: &str, slot: u32) -> ObservedPod {
        ObservedPod {
            name: name.to_owned(),
            uid: format!("{name}-uid"),
            kind: Some(StressKind::Cpu),
            slot: Some(slot),
            template_hash: None,
            phase: Phase::Running,
            scheduled: true,
            ready: true,
            created: Some(t0()),
            deleting: None,
        }
    }

    #[test]
    fn doubles_per_failure_up_to_the_cap_and_resets_on_success() {
        let mut b = SlotBackoff::new(Duration::from_secs(5), Duration::from_secs(30));
        let waits: Vec<u64> = (0..5)
            .map(|i| {
                b.failed("ns", "lab", "lab-cpu-0", &format!("uid{i}"), t0())
                    .as_secs()
            })
            .collect();
        assert_eq!(waits, [5, 10, 20, 30, 30]);
        b.failed("ns", "lab", "lab-cpu-0", "uid4", t0());
        assert_eq!(
            b.failures("ns", "lab", "lab-cpu-0"),
            5,
            "the same pod counts once"
        );
        assert_eq!(
            b.observe("ns", "lab", &[])["lab-cpu-0"],
            t0() + Duration::from_secs(30)
        );
        assert!(b.observe("other", "lab", &[]).is_empty());
        // Either of the slot's names getting ready clears it.
        assert!(
            b.observe("ns", "lab", &[ready_pod("lab-cpu-0-b", 0)])
                .is_empty()
        );
        assert_eq!(
            b.failed("ns", "lab", "lab-cpu-0", "uid9", t0()).as_secs(),
            5
        );
    }

    #[test]
    fn failures_are_recorded_from_the_plan_and_named_for_the_event() {
        let mut b = SlotBackoff::new(Duration::from_secs(5), Duration::from_secs(30));
        let mut surplus = failed_pod("lab-cpu-3", "u3", 3);
        surplus.reason = DeleteReason::Surplus;
        let deletes = [failed_pod("lab-cpu-0", "u0", 0), surplus];
        assert_eq!(
            b.record_failures("ns", "lab", &deletes, t0()),
            ["lab-cpu-0 (next try in 5s)"]
        );
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn workloads_with_a_shared_name_prefix_keep_apart() {
        let mut b = SlotBackoff::new(Duration::from_secs(5), Duration::from_secs(30));
        b.failed("ns", "lab", "lab-cpu-0", "u", t0());
        b.failed("ns", "lab-x", "lab-x-cpu-0", "u", t0());
        b.forget_workload("ns", "lab");
        assert_eq!(b.failures("ns", "lab-x", "lab-x-cpu-0"), 1);
        assert_eq!(b.len(), 1);
    }

    /// 1,000 Workloads, each with a failed slot: deleting them (or a relist that no longer lists
    /// them) leaves no record.
    #[test]
    fn records_leave_with_their_workloads() {
        let mut b = SlotBackoff::new(Duration::from_secs(5), Duration::from_secs(30));
        for i in 0..1000 {
            let wl = format!("wl-{i}");
            b.record_failures(
                "ns",
                &wl,
                &[failed_pod(&format!("{wl}-cpu-0"), "u", 0)],
                t0(),
            );
        }
        assert_eq!(b.len(), 1000);
        for i in 0..500 {
            b.forget_workload("ns", &format!("wl-{i}"));
        }
        assert_eq!(b.len(), 500);
        b.retain_workloads(|_, _| false);
        assert_eq!(b.len(), 0);
        assert!(b.is_empty());
    }
}
