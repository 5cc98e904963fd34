//! The last status this process wrote, per Workload. The operator is the only writer of a Workload's
//! status, so that status is the truth while the Workload cache may still show an older one; run
//! counters are folded into the previous status, and folding into a stale one would lose runs.
//! When it was written says when the next may be (writes are spaced, see [`WrittenStatuses::hold_for`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use stressmix_api::workload::WorkloadStatus;

use crate::backoff::WorkloadKey;

/// Statuses written, by Workload, with the UID they were written for and when.
#[derive(Debug, Default)]
pub struct WrittenStatuses {
    entries: Mutex<HashMap<WorkloadKey, Written>>,
}

#[derive(Debug)]
struct Written {
    uid: String,
    status: WorkloadStatus,
    at: Instant,
}

impl WrittenStatuses {
    /// The status last written for the Workload `uid` (a Workload recreated under the same name has
    /// none).
    pub fn get(&self, namespace: &str, name: &str, uid: &str) -> Option<WorkloadStatus> {
        self.lock()
            .get(&key(namespace, name))
            .filter(|w| w.uid == uid)
            .map(|w| w.status.clone())
    }

    /// How long the next status of the Workload `uid` waits so that writes stay `interval` apart;
    /// None when it may be written now.
    pub fn hold_for(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        interval: Duration,
        now: Instant,
    ) -> Option<Duration> {
        let entries = self.lock();
        let written = entries
            .get(&key(namespace, name))
            .filter(|w| w.uid == uid)?;
        let due = written.at + interval;
        (due > now).then(|| due - now)
    }

    /// Records a status the API server accepted at `at`.
    pub fn record(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        status: WorkloadStatus,
        at: Instant,
    ) {
        let written = Written {
            uid: uid.to_owned(),
            status,
            at,
        };
        self.lock().insert(key(namespace, name), written);
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

    fn lock(&self) -> MutexGuard<'_, HashMap<WorkloadKey, Written>> {
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
        let now = Instant::now();
        written.record("ns", "lab", "uid-1", runs(1), now);
        written.record("ns", "lab", "uid-1", runs(2), now);
        assert_eq!(written.get("ns", "lab", "uid-1"), Some(runs(2)));
        assert_eq!(
            written.get("ns", "lab", "uid-2"),
            None,
            "recreated under the same name"
        );
        for i in 0..1000 {
            written.record("ns", &format!("wl-{i}"), "u", runs(i), now);
        }
        assert_eq!(written.len(), 1001);
        written.forget_workload("ns", "lab");
        written.retain_workloads(|_, name| name == "wl-7");
        assert_eq!(written.len(), 1);
        written.forget_workload("ns", "wl-7");
        assert!(written.is_empty());
    }

    #[test]
    fn writes_are_held_until_the_interval_since_the_last_has_passed() {
        let written = WrittenStatuses::default();
        let (t0, second) = (Instant::now(), Duration::from_secs(1));
        assert_eq!(
            written.hold_for("ns", "lab", "u", second, t0),
            None,
            "never written"
        );
        written.record("ns", "lab", "u", runs(1), t0);
        let later = t0 + Duration::from_millis(300);
        assert_eq!(
            written.hold_for("ns", "lab", "u", second, later),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            written.hold_for("ns", "lab", "u", second, t0 + second),
            None
        );
        assert_eq!(
            written.hold_for("ns", "lab", "other-uid", second, later),
            None,
            "a Workload recreated under the same name is not held by its predecessor"
        );
    }
}
