//! OOM kills per interval and the cgroup whose processes were killed, from the `oom_kill` counter
//! of `memory.events` (the module's `memory_events`).
//!
//! The counter is hierarchical: a cgroup's count includes its descendants'. The victim's own cgroup
//! rarely lives to be read again: a killed container's cgroup is removed as soon as its task is
//! reaped, so its last kill is only seen in its ancestors' counters. Per interval, each cgroup's
//! kills are its counter's growth (all of it for a cgroup new in this interval), and its *own*
//! kills are those less what its listed children account for:
//! - own kills of a cgroup without listed children are kills of its processes (seen directly);
//! - own kills of a parent are kills in children that vanished during the interval. They go to the
//!   vanished leaf below it (nearest remaining ancestor: this parent) that came closest to its
//!   memory limit at its last reading (the OOM victim is the cgroup that hit its limit), or to the
//!   parent itself when no vanished cgroup was listed below it (created and gone within one
//!   interval).
//!
//! Kills in cgroups whose ancestors are not listed (module or fallback with `containers_only`)
//! are seen only while the cgroup lives.

use std::collections::HashMap;

use stressmix_api::kmod::Snapshot;
use stressmix_api::readings::OomObservation;

/// Kills of one cgroup's processes in one interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomCount {
    pub cgroup_path: String,
    pub count: u64,
    pub observed: OomObservation,
}

#[derive(Debug, Clone)]
struct Seen {
    id: u64,
    oom_kill: u64,
    /// How close the cgroup came to its limit: (peak / limit, peak bytes).
    fill: (f64, u64),
}

/// Cgroups with memory events by path. A path listed with another id is another cgroup (removed
/// and created again), as in [`crate::rates`].
type Listing = HashMap<String, Seen>;

#[derive(Debug, Default)]
pub struct OomTracker {
    previous: Option<Listing>,
}

fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once('/')
        .map(|(parent, _)| parent)
        .filter(|p| !p.is_empty())
}

impl OomTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The kills since the previous snapshot; nothing for the first one.
    pub fn update(&mut self, snapshot: &Snapshot) -> Vec<OomCount> {
        let current: Listing = snapshot
            .cgroups
            .iter()
            .filter_map(|c| {
                let events = c.memory_events?;
                let peak = c.memory.map_or(0, |m| m.peak_bytes);
                let limit = c.memory.and_then(|m| m.limit_bytes).filter(|&l| l > 0);
                Some((
                    c.path.to_string_lossy().into_owned(),
                    Seen {
                        id: c.id,
                        oom_kill: events.oom_kill,
                        fill: (limit.map_or(0.0, |l| peak as f64 / l as f64), peak),
                    },
                ))
            })
            .collect();
        let kills = self
            .previous
            .as_ref()
            .map(|previous| count_kills(previous, &current))
            .unwrap_or_default();
        self.previous = Some(current);
        kills
    }
}

fn count_kills(previous: &Listing, current: &Listing) -> Vec<OomCount> {
    let same = |path: &str, seen: &Seen| previous.get(path).filter(|b| b.id == seen.id);
    let kills = |path: &str, seen: &Seen| match same(path, seen) {
        Some(before) => seen.oom_kill.saturating_sub(before.oom_kill),
        None => seen.oom_kill,
    };
    let mut children_kills: HashMap<&str, u64> = HashMap::new();
    for (path, seen) in current {
        if let Some(parent) = parent_of(path).filter(|p| current.contains_key(*p)) {
            *children_kills.entry(parent).or_default() += kills(path, seen);
        }
    }
    // Vanished cgroups, grouped by their nearest ancestor still listed.
    let mut vanished: HashMap<&str, Vec<(&str, &Seen)>> = HashMap::new();
    for (path, seen) in previous {
        if current.get(path).is_some_and(|now| now.id == seen.id) {
            continue;
        }
        let mut up = path.as_str();
        while let Some(parent) = parent_of(up) {
            if current.contains_key(parent) {
                vanished.entry(parent).or_default().push((path, seen));
                break;
            }
            up = parent;
        }
    }

    let mut out = Vec::new();
    for (path, seen) in current {
        let own = kills(path, seen)
            .saturating_sub(children_kills.get(path.as_str()).copied().unwrap_or(0));
        if own == 0 {
            continue;
        }
        let gone = vanished
            .get(path.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let is_leaf = |(v, _): &&(&str, &Seen)| {
            let prefix = format!("{v}/");
            !gone.iter().any(|(other, _)| other.starts_with(&prefix))
        };
        let victim = gone.iter().filter(is_leaf).max_by(|a, b| {
            a.1.fill
                .partial_cmp(&b.1.fill)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        out.push(match victim {
            Some((v, _)) => OomCount {
                cgroup_path: (*v).to_owned(),
                count: own,
                observed: OomObservation::Ancestor,
            },
            None => OomCount {
                cgroup_path: path.clone(),
                count: own,
                observed: OomObservation::Cgroup,
            },
        });
    }
    out.sort_by(|a, b| a.cgroup_path.cmp(&b.cgroup_path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use stressmix_api::kmod::{Cgroup, CgroupMemory, KString, MemoryEvents};

    const FIXTURE: &str = include_str!("../../api/tests/fixtures/kmod/handwritten-v1.json");

    fn template() -> Cgroup {
        let snapshot: Snapshot = serde_json::from_str(FIXTURE).expect("fixture parses");
        snapshot.cgroups[0].clone()
    }

    /// A cgroup with a memory limit of 100 bytes, `peak` bytes at most and `oom_kill` kills.
    fn cgroup(id: u64, path: &str, peak: u64, oom_kill: u64) -> Cgroup {
        let mut c = template();
        c.id = id;
        c.path = KString::from(path);
        c.memory = Some(CgroupMemory {
            current_bytes: peak,
            peak_bytes: peak,
            limit_bytes: Some(100),
        });
        c.memory_events = Some(MemoryEvents {
            low: 0,
            high: 0,
            max: oom_kill,
            oom: oom_kill,
            oom_kill,
        });
        c
    }

    fn snapshot(cgroups: Vec<Cgroup>) -> Snapshot {
        let mut s: Snapshot = serde_json::from_str(FIXTURE).expect("fixture parses");
        s.cgroups = cgroups;
        s
    }

    const QOS: &str = "/kubepods/burstable";
    const POD: &str = "/kubepods/burstable/podA";
    const STRESS: &str = "/kubepods/burstable/podA/c1";
    const SANDBOX: &str = "/kubepods/burstable/podA/s1";

    fn pod(pod_kills: u64, with_stress: Option<u64>) -> Vec<Cgroup> {
        let mut list = vec![
            cgroup(1, QOS, 10, pod_kills),
            cgroup(2, POD, 10, pod_kills),
            cgroup(3, SANDBOX, 1, 0),
        ];
        if let Some(kills) = with_stress {
            list.push(cgroup(4, STRESS, 99, kills));
        }
        list
    }

    fn count(path: &str, count: u64, observed: OomObservation) -> OomCount {
        OomCount {
            cgroup_path: path.to_owned(),
            count,
            observed,
        }
    }

    #[test]
    fn kills_of_a_listed_container_are_its_own() {
        let mut t = OomTracker::new();
        assert!(t.update(&snapshot(pod(0, Some(0)))).is_empty());
        assert!(t.update(&snapshot(pod(0, Some(0)))).is_empty(), "no kills");
        let kills = t.update(&snapshot(pod(2, Some(2))));
        assert_eq!(kills, vec![count(STRESS, 2, OomObservation::Cgroup)]);
        assert!(
            t.update(&snapshot(pod(2, Some(2)))).is_empty(),
            "counted once"
        );
    }

    /// The killed container's cgroup is removed at once and a new one replaces it: the kill is
    /// seen in the pod's counter and goes to the vanished container, not to its replacement or
    /// the sandbox.
    #[test]
    fn a_kill_in_a_vanished_container_goes_to_it_through_its_ancestor() {
        let mut t = OomTracker::new();
        t.update(&snapshot(pod(0, Some(0))));
        let mut replaced = pod(1, None);
        replaced.push(cgroup(5, "/kubepods/burstable/podA/c2", 5, 0));
        assert_eq!(
            t.update(&snapshot(replaced.clone())),
            vec![count(STRESS, 1, OomObservation::Ancestor)]
        );
        // The replacement is killed too, and removed: its own slot in the count.
        t.update(&snapshot(replaced));
        let kills = t.update(&snapshot(pod(2, None)));
        assert_eq!(
            kills,
            vec![count(
                "/kubepods/burstable/podA/c2",
                1,
                OomObservation::Ancestor
            )]
        );
    }

    /// Pod and container both gone: the kill is found in the QoS cgroup and still goes to the
    /// container (the leaf nearest its limit), not to the pod cgroup or the sandbox.
    #[test]
    fn a_whole_pod_gone_is_found_from_the_qos_cgroup() {
        let mut t = OomTracker::new();
        t.update(&snapshot(pod(0, Some(0))));
        let kills = t.update(&snapshot(vec![cgroup(1, QOS, 10, 1)]));
        assert_eq!(kills, vec![count(STRESS, 1, OomObservation::Ancestor)]);
    }

    /// A container created and killed within one interval was never listed: its pod, the nearest
    /// cgroup that was, carries the kill.
    #[test]
    fn a_container_never_listed_leaves_the_kill_with_its_pod() {
        let mut t = OomTracker::new();
        t.update(&snapshot(pod(0, None)));
        let kills = t.update(&snapshot(pod(1, None)));
        assert_eq!(kills, vec![count(POD, 1, OomObservation::Cgroup)]);
        // A pod created and killed within the interval: new cgroups count from zero.
        let mut t = OomTracker::new();
        t.update(&snapshot(vec![cgroup(1, QOS, 10, 0)]));
        let kills = t.update(&snapshot(pod(1, Some(1))));
        assert_eq!(kills, vec![count(STRESS, 1, OomObservation::Cgroup)]);
    }

    #[test]
    fn cgroups_without_memory_events_are_not_counted() {
        let mut t = OomTracker::new();
        let mut bare = pod(0, Some(0));
        bare.iter_mut().for_each(|c| c.memory_events = None);
        t.update(&snapshot(bare.clone()));
        assert!(t.update(&snapshot(bare)).is_empty());
    }
}
