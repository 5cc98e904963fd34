//! Pods created but not yet seen in the cache ("expectations" in the ReplicaSet controller).
//!
//! The planner may put a replacement into a slot as soon as the old pod is marked for deletion,
//! under the slot's other name. Its cache can then be behind its own writes: the old pod's removal
//! already applied, the new pod's creation not yet. Without this record, such a view shows an empty
//! slot and a second pod would go into it under the first name. An entry lives from just before
//! its create request until the cache holds the pod, the watch reports it deleted, or `ttl` passes
//! (a create the watch never showed, e.g. a pod created and removed while the watch re-listed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::planner::Create;

/// How long an unseen create holds its slot at most.
pub const IN_FLIGHT_TTL: Duration = Duration::from_secs(30);

/// `(namespace, workload)`.
type WorkloadKey = (String, String);
/// One Workload's creates in flight: pod name -> the create and when it was recorded.
type Creates = HashMap<String, (Create, Instant)>;

/// Creates of one controller run, per Workload.
#[derive(Debug)]
pub struct InFlight {
    ttl: Duration,
    entries: Mutex<HashMap<WorkloadKey, Creates>>,
}

impl InFlight {
    /// An empty record whose entries expire after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Records `create` of `workload` before its request is sent.
    pub fn record(&self, namespace: &str, workload: &str, create: &Create) {
        self.lock()
            .entry(key(namespace, workload))
            .or_default()
            .insert(create.name.clone(), (create.clone(), Instant::now()));
    }

    /// Forgets pod `pod` of `workload`: its create failed, or the watch reported it deleted.
    pub fn forget(&self, namespace: &str, workload: &str, pod: &str) {
        let mut entries = self.lock();
        let workload = key(namespace, workload);
        if let Some(pods) = entries.get_mut(&workload) {
            pods.remove(pod);
            if pods.is_empty() {
                entries.remove(&workload);
            }
        }
    }

    /// The creates of `workload` still unseen: drops those the cache now holds (`cached`) and those
    /// older than the TTL, and returns the rest, by name.
    pub fn pending(
        &self,
        namespace: &str,
        workload: &str,
        cached: impl Fn(&str) -> bool,
    ) -> Vec<Create> {
        let mut entries = self.lock();
        let workload = key(namespace, workload);
        let Some(pods) = entries.get_mut(&workload) else {
            return Vec::new();
        };
        pods.retain(|name, (_, since)| !cached(name) && since.elapsed() < self.ttl);
        let mut pending: Vec<Create> = pods.values().map(|(c, _)| c.clone()).collect();
        if pending.is_empty() {
            entries.remove(&workload);
        }
        pending.sort_by(|a, b| a.name.cmp(&b.name));
        pending
    }

    /// Drops every record of a deleted Workload.
    pub fn forget_workload(&self, namespace: &str, workload: &str) {
        self.lock().remove(&key(namespace, workload));
    }

    /// Keeps only the records of Workloads for which `live` holds.
    pub fn retain_workloads(&self, live: impl Fn(&str, &str) -> bool) {
        self.lock().retain(|(ns, name), _| live(ns, name));
    }

    /// Creates recorded, over all Workloads.
    pub fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    /// No create is recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkloadKey, Creates>> {
        // A panic while holding the lock leaves the map consistent (single inserts/removes).
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(namespace: &str, workload: &str) -> WorkloadKey {
    (namespace.to_owned(), workload.to_owned())
}

#[cfg(test)]
mod tests {
    use stressmix_api::workload::StressKind;

    use super::*;

    fn create(name: &str, slot: u32) -> Create {
        Create {
            kind: StressKind::Cpu,
            slot,
            name: name.to_owned(),
        }
    }

    #[test]
    fn a_create_is_pending_until_the_cache_holds_it_or_the_watch_deletes_it() {
        let record = InFlight::new(Duration::from_secs(30));
        record.record("ns", "lab", &create("lab-cpu-0-b", 0));
        record.record("ns", "lab", &create("lab-cpu-1", 1));
        record.record("ns", "other", &create("other-cpu-0", 0));
        record.record("ns2", "lab", &create("lab-cpu-2", 2));

        let pending = record.pending("ns", "lab", |_| false);
        assert_eq!(
            pending,
            vec![create("lab-cpu-0-b", 0), create("lab-cpu-1", 1)]
        );
        // The cache shows lab-cpu-1: no longer pending, and not again later.
        assert_eq!(
            record.pending("ns", "lab", |n| n == "lab-cpu-1"),
            vec![create("lab-cpu-0-b", 0)]
        );
        assert_eq!(
            record.pending("ns", "lab", |_| false),
            vec![create("lab-cpu-0-b", 0)]
        );
        record.forget("ns", "lab", "lab-cpu-0-b");
        assert!(record.pending("ns", "lab", |_| false).is_empty());
        // Other Workloads and namespaces are untouched.
        assert_eq!(
            record.pending("ns", "other", |_| false),
            vec![create("other-cpu-0", 0)]
        );
        assert_eq!(
            record.pending("ns2", "lab", |_| false),
            vec![create("lab-cpu-2", 2)]
        );
    }

    #[test]
    fn an_unseen_create_expires_after_the_ttl() {
        let record = InFlight::new(Duration::from_millis(30));
        record.record("ns", "lab", &create("lab-cpu-0", 0));
        assert_eq!(record.pending("ns", "lab", |_| false).len(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(record.pending("ns", "lab", |_| false).is_empty());
    }

    /// 1,000 Workloads with a create in flight each: deleting them leaves no record.
    #[test]
    fn records_leave_with_their_workloads() {
        let record = InFlight::new(Duration::from_secs(30));
        for i in 0..1000 {
            record.record(
                "ns",
                &format!("wl-{i}"),
                &create(&format!("wl-{i}-cpu-0"), 0),
            );
        }
        assert_eq!(record.len(), 1000);
        for i in 0..500 {
            record.forget_workload("ns", &format!("wl-{i}"));
        }
        assert_eq!(record.len(), 500);
        record.retain_workloads(|_, name| name == "wl-999");
        assert_eq!(record.len(), 1);
        record.forget_workload("ns", "wl-999");
        assert!(record.is_empty());
    }
}
