//! OOM kills per interval and the cgroup whose processes were killed, from the `oom_kill` counter
//! of `memory.events` (the module's `memory_events`).
//!
//! The counter is hierarchical: every ancestor of the victim counts the kill too. The victim's own
//! cgroup rarely lives until the next snapshot (a killed container's cgroup is removed as soon as
//! its task is reaped), so [`crate::oom_watch`] reads `memory.events` of every listed cgroup at the
//! moment the kernel says it changed; those last values ("finals") stand in for the cgroups gone
//! since. Per interval, a cgroup's kills are its counter's growth (all of it for a cgroup new in
//! the interval) and its *own* kills are those less what its read children account for. Own kills
//! are reported where they are read: at the cgroup itself when it never had child cgroups (its
//! processes were killed, `observed: cgroup`), else at that ancestor (`observed: ancestor`: the
//! kill was in a descendant that could not be read, e.g. a container created and killed within
//! one interval is found in its pod's counter). Nothing is guessed: a kill is never given to a
//! cgroup whose own counter did not show it.
//!
//! Kills in cgroups whose ancestors are not listed (module or fallback with `containers_only`)
//! are seen only while the cgroup lives.

use std::collections::HashMap;

use stressmix_api::kmod::Snapshot;
use stressmix_api::readings::OomObservation;

/// Kills of one cgroup's processes (or, for `observed: ancestor`, of its descendants) in one
/// interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomCount {
    pub cgroup_path: String,
    pub count: u64,
    pub observed: OomObservation,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    id: u64,
    oom_kill: u64,
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

    /// The kills since the previous snapshot (nothing for the first one). `finals` are the last
    /// `oom_kill` values read at change events, by cgroup path, since the previous snapshot; taken
    /// before this snapshot was read, so the snapshot's value wins for a cgroup still listed.
    pub fn update(&mut self, snapshot: &Snapshot, finals: &HashMap<String, u64>) -> Vec<OomCount> {
        let current: Listing = snapshot
            .cgroups
            .iter()
            .filter_map(|c| {
                let events = c.memory_events?;
                Some((
                    c.path.to_string_lossy().into_owned(),
                    Seen {
                        id: c.id,
                        oom_kill: events.oom_kill,
                    },
                ))
            })
            .collect();
        let kills = self
            .previous
            .as_ref()
            .map(|previous| count_kills(previous, &current, finals))
            .unwrap_or_default();
        self.previous = Some(current);
        kills
    }
}

fn count_kills(
    previous: &Listing,
    current: &Listing,
    finals: &HashMap<String, u64>,
) -> Vec<OomCount> {
    // What was read this interval: the snapshot, and the last values of cgroups gone since.
    let mut read: HashMap<&str, Seen> = current.iter().map(|(p, s)| (p.as_str(), *s)).collect();
    for (path, &oom_kill) in finals {
        if let (false, Some(before)) = (current.contains_key(path), previous.get(path)) {
            read.insert(
                path,
                Seen {
                    id: before.id,
                    oom_kill,
                },
            );
        }
    }
    let kills = |path: &str, seen: &Seen| match previous.get(path).filter(|b| b.id == seen.id) {
        Some(before) => seen.oom_kill.saturating_sub(before.oom_kill),
        None => seen.oom_kill,
    };
    let mut children_kills: HashMap<&str, u64> = HashMap::new();
    for (&path, seen) in &read {
        if let Some(parent) = parent_of(path).filter(|p| read.contains_key(p)) {
            *children_kills.entry(parent).or_default() += kills(path, seen);
        }
    }
    let has_children: std::collections::HashSet<&str> = previous
        .keys()
        .map(String::as_str)
        .chain(read.keys().copied())
        .filter_map(parent_of)
        .collect();

    let mut out: Vec<OomCount> = read
        .iter()
        .filter_map(|(&path, seen)| {
            let own =
                kills(path, seen).saturating_sub(children_kills.get(path).copied().unwrap_or(0));
            (own > 0).then(|| OomCount {
                cgroup_path: path.to_owned(),
                count: own,
                observed: if has_children.contains(path) {
                    OomObservation::Ancestor
                } else {
                    OomObservation::Cgroup
                },
            })
        })
        .collect();
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

    /// A cgroup with memory and `oom_kill` kills so far.
    fn cgroup(id: u64, path: &str, oom_kill: u64) -> Cgroup {
        let mut c = template();
        c.id = id;
        c.path = KString::from(path);
        c.memory = Some(CgroupMemory {
            current_bytes: 1 << 20,
            peak_bytes: 1 << 20,
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
            cgroup(1, QOS, pod_kills),
            cgroup(2, POD, pod_kills),
            cgroup(3, SANDBOX, 0),
        ];
        if let Some(kills) = with_stress {
            list.push(cgroup(4, STRESS, kills));
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

    fn no_finals() -> HashMap<String, u64> {
        HashMap::new()
    }

    #[test]
    fn kills_of_a_listed_container_are_its_own() {
        let mut t = OomTracker::new();
        assert!(
            t.update(&snapshot(pod(0, Some(0))), &no_finals())
                .is_empty()
        );
        assert!(
            t.update(&snapshot(pod(0, Some(0))), &no_finals())
                .is_empty(),
            "no kills"
        );
        let kills = t.update(&snapshot(pod(2, Some(2))), &no_finals());
        assert_eq!(kills, vec![count(STRESS, 2, OomObservation::Cgroup)]);
        assert!(
            t.update(&snapshot(pod(2, Some(2))), &no_finals())
                .is_empty(),
            "counted once"
        );
    }

    /// The killed container's cgroup is removed at once and a new one replaces it: the value the
    /// watch read at the kill makes it the container's own, not its replacement's or the sandbox's.
    #[test]
    fn a_kill_in_a_vanished_container_read_at_the_event_is_its_own() {
        let mut t = OomTracker::new();
        t.update(&snapshot(pod(0, Some(0))), &no_finals());
        let mut replaced = pod(1, None);
        replaced.push(cgroup(5, "/kubepods/burstable/podA/c2", 0));
        let finals = HashMap::from([(STRESS.to_owned(), 1), (POD.to_owned(), 1)]);
        assert_eq!(
            t.update(&snapshot(replaced.clone()), &finals),
            vec![count(STRESS, 1, OomObservation::Cgroup)]
        );
        // The replacement is killed too and gone, its final value unread: the kill stays with the
        // pod, which says it was in a descendant.
        t.update(&snapshot(replaced), &no_finals());
        let kills = t.update(&snapshot(pod(2, None)), &no_finals());
        assert_eq!(kills, vec![count(POD, 1, OomObservation::Ancestor)]);
    }

    /// Pod and container both gone: with their last values read the kill is the container's; with
    /// only the pod's, the pod's; with none, the QoS cgroup's.
    #[test]
    fn a_whole_pod_gone_is_found_as_deep_as_it_was_read() {
        let cases = [
            (
                vec![(POD, 1), (STRESS, 1)],
                count(STRESS, 1, OomObservation::Cgroup),
            ),
            (vec![(POD, 1)], count(POD, 1, OomObservation::Ancestor)),
            (vec![], count(QOS, 1, OomObservation::Ancestor)),
        ];
        for (finals, expected) in cases {
            let finals: HashMap<String, u64> =
                finals.into_iter().map(|(p, v)| (p.to_owned(), v)).collect();
            let mut t = OomTracker::new();
            t.update(&snapshot(pod(0, Some(0))), &no_finals());
            let kills = t.update(&snapshot(vec![cgroup(1, QOS, 1)]), &finals);
            assert_eq!(kills, vec![expected], "finals {finals:?}");
        }
    }

    /// A container created and killed within one interval was never listed: its pod carries the
    /// kill. A pod created within the interval counts from zero.
    #[test]
    fn a_container_never_listed_leaves_the_kill_with_its_pod() {
        let mut t = OomTracker::new();
        t.update(&snapshot(pod(0, None)), &no_finals());
        let kills = t.update(&snapshot(pod(1, None)), &no_finals());
        assert_eq!(kills, vec![count(POD, 1, OomObservation::Ancestor)]);
        let mut t = OomTracker::new();
        t.update(&snapshot(vec![cgroup(1, QOS, 0)]), &no_finals());
        let kills = t.update(&snapshot(pod(1, Some(1))), &no_finals());
        assert_eq!(kills, vec![count(STRESS, 1, OomObservation::Cgroup)]);
    }

    /// A final value of a cgroup still listed is older than the snapshot: the snapshot counts.
    #[test]
    fn the_snapshot_wins_over_an_older_final() {
        let mut t = OomTracker::new();
        t.update(&snapshot(pod(0, Some(0))), &no_finals());
        let finals = HashMap::from([(STRESS.to_owned(), 1)]);
        let kills = t.update(&snapshot(pod(2, Some(2))), &finals);
        assert_eq!(kills, vec![count(STRESS, 2, OomObservation::Cgroup)]);
    }

    #[test]
    fn cgroups_without_memory_events_are_not_counted() {
        let mut t = OomTracker::new();
        let mut bare = pod(0, Some(0));
        bare.iter_mut().for_each(|c| c.memory_events = None);
        t.update(&snapshot(bare.clone()), &no_finals());
        assert!(t.update(&snapshot(bare), &no_finals()).is_empty());
    }
}
