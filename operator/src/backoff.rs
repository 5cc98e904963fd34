//! Per-slot failure backoff: a slot whose pod failed waits before its replacement, doubling each
//! consecutive failure up to a cap, and starts over once a pod in that slot succeeds or gets ready.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Backoff state of every slot that failed recently, keyed by `<namespace>/<pod name>`.
#[derive(Debug)]
pub struct SlotBackoff {
    base: Duration,
    cap: Duration,
    /// slot -> (consecutive failures, not before, uid of the last failed pod)
    slots: BTreeMap<String, (u32, SystemTime, String)>,
}

impl SlotBackoff {
    /// A tracker whose first wait is `base`, doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            slots: BTreeMap::new(),
        }
    }

    /// Records that pod `uid` in `slot` failed at `now`; returns how long the slot now waits.
    /// The same pod seen failed again (reconciles before its deletion lands) counts once.
    pub fn failed(&mut self, slot: &str, uid: &str, now: SystemTime) -> Duration {
        if let Some((_, until, last)) = self.slots.get(slot)
            && last == uid
        {
            return until.duration_since(now).unwrap_or(Duration::ZERO);
        }
        let failures = self.failures(slot).saturating_add(1);
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        let wait = self.base.saturating_mul(factor).min(self.cap);
        self.slots
            .insert(slot.to_owned(), (failures, now + wait, uid.to_owned()));
        wait
    }

    /// Forgets the failures of `slot` (its pod ran well).
    pub fn succeeded(&mut self, slot: &str) {
        self.slots.remove(slot);
    }

    /// Consecutive failures recorded for `slot`.
    pub fn failures(&self, slot: &str) -> u32 {
        self.slots.get(slot).map_or(0, |(n, _, _)| *n)
    }

    /// `pod name -> not before` for the slots of `namespace`, in the shape the planner takes.
    pub fn not_before(&self, namespace: &str) -> BTreeMap<String, SystemTime> {
        let prefix = format!("{namespace}/");
        self.slots
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, (_, t, _))| (k[prefix.len()..].to_owned(), *t))
            .collect()
    }

    /// Drops entries whose wait ended long ago, so deleted Workloads do not leak memory.
    pub fn forget_older_than(&mut self, now: SystemTime, age: Duration) {
        self.slots.retain(|_, (_, until, _)| *until + age > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_failure_up_to_the_cap_and_resets_on_success() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut b = SlotBackoff::new(Duration::from_secs(5), Duration::from_secs(30));
        let waits: Vec<u64> = (0..5)
            .map(|i| b.failed("ns/lab-cpu-0", &format!("uid{i}"), t0).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20, 30, 30]);
        b.failed("ns/lab-cpu-0", "uid4", t0);
        assert_eq!(b.failures("ns/lab-cpu-0"), 5, "the same pod counts once");
        assert_eq!(b.failures("ns/lab-cpu-0"), 5);
        assert_eq!(
            b.not_before("ns")["lab-cpu-0"],
            t0 + Duration::from_secs(30)
        );
        assert!(b.not_before("other").is_empty());
        b.succeeded("ns/lab-cpu-0");
        assert_eq!(b.failed("ns/lab-cpu-0", "uid9", t0).as_secs(), 5);
    }

    #[test]
    fn old_entries_are_forgotten() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut b = SlotBackoff::new(Duration::from_secs(5), Duration::from_secs(30));
        b.failed("ns/a", "u", t0);
        b.forget_older_than(t0 + Duration::from_secs(100), Duration::from_secs(60));
        assert_eq!(b.failures("ns/a"), 0);
    }
}
