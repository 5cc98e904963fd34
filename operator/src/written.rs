//! The last status this process wrote, per Workload. The operator is the only writer of a Workload's
//! status, so that status is the truth while the Workload cache may still show an older one; run
//! counters are folded into the previous status, and folding into a stale one would lose runs.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use stressmix_api::workload::WorkloadStatus;

use crate::backoff::WorkloadKey;

/// Statuses written, by Workload, with the UID they were written for.
#[derive(Debug, Default)]
pub struct WrittenStatuses {
    entries: Mutex<HashMap<WorkloadKey, (String, WorkloadStatus)>>,
}

impl WrittenStatuses {
    /// The status last written for the Workload `uid` (a Workload recreated under the same name has
    /// none).
    pub fn get(&self, namespace: &str, name: &str, uid: &str) -> Option<WorkloadStatus> {
        self.lock()
            .get(&key(namespace, name))
            .filter(|(written_for, _)| written_for == uid)
            .map(|(_, status)| status.clone())
    }

    /// Records a status the API server accepted.
    pub fn record(&self, namespace: &str, name: &str, uid: &str, status: WorkloadStatus) {
        self.lock()
            .insert(key(namespace, name), (uid.to_owned(), status));
    }

    /// Drops the status of a deleted Workload.
    pub fn forget_workload(&self, namespace: &str, name: &str) {
        self.lock().remove(&key(namespace, name));
    }

    /// Keeps only the statuses of Workloads for which `live` holds.
    pub fn retain_workloads(&self, live: impl Fn(&str, &str) -> bool) {
        self.lock().retain(|(ns, name), _| live(ns, name));
    }

    /// Workloads with a status recorded.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No status is recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<WorkloadKey, (String, WorkloadStatus)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(namespace: &str, name: &str) -> WorkloadKey {
    (namespace.to_owned(), name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(n: i64) -> WorkloadStatus {
        WorkloadStatus {
            completed_runs: n,
            ..WorkloadStatus::default()
        }
    }

    #[test]
    fn the_last_write_is_kept_for_its_uid_and_leaves_with_the_workload() {
        let written = WrittenStatuses::default();
        written.record("ns", "lab", "uid-1", runs(1));
        written.record("ns", "lab", "uid-1", runs(2));
        assert_eq!(written.get("ns", "lab", "uid-1"), Some(runs(2)));
        assert_eq!(
            written.get("ns", "lab", "uid-2"),
            None,
            "recreated under the same name"
        );
        for i in 0..1000 {
            written.record("ns", &format!("wl-{i}"), "u", runs(i));
        }
        assert_eq!(written.len(), 1001);
        written.forget_workload("ns", "lab");
        written.retain_workloads(|_, name| name == "wl-7");
        assert_eq!(written.len(), 1);
        written.forget_workload("ns", "wl-7");
        assert!(written.is_empty());
    }
}
