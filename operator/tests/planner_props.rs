//! Property tests of the planner over thousands of random observed states, exact and stale.
//!
//! Proven for every generated state:
//! - never two live pods in one slot: creates go only to distinct, in-range slots that no live or
//!   failed pod holds, under a name of the slot that no observed pod has;
//! - never more live pods than desired per kind after the actions (exact view), and under a stale or
//!   partial view never more than desired (or the live pods in flight, if more) plus the live pods
//!   the view missed and that were not recorded as in flight;
//! - every finished, failed, expired and outdated pod is deleted, and a second round (deleted pods
//!   gone, created pods present) reaches exactly the desired count of live pods.

mod planner_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use planner_support::{LIFETIME, hash, now, plan_at};

use proptest::prelude::*;
use stressmix_api::workload::StressKind;
use stressmix_operator::planner::{
    Create, DeleteReason, KindDesire, ObservedPod, Phase, Plan, second_name, slot_name,
};

#[derive(Clone, Debug)]
struct PodSeed {
    kind: usize,
    slot: u32,
    phase: u8,
    scheduled: bool,
    ready: bool,
    age: u64,
    outdated: bool,
    deleting_for: Option<u64>,
    second: bool,
}

fn pod_seed() -> impl Strategy<Value = PodSeed> {
    (
        0..4usize,
        0..8u32,
        0..5u8,
        any::<bool>(),
        any::<bool>(),
        0..400u64,
        prop::bool::weighted(0.2),
        prop::option::weighted(0.15, 0..100u64),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(kind, slot, phase, scheduled, ready, age, outdated, deleting_for, second)| PodSeed {
                kind,
                slot,
                phase,
                scheduled,
                ready,
                age,
                outdated,
                deleting_for,
                second,
            },
        )
}

/// A consistent cluster: at most one pod per name (the API server guarantees it).
fn build_pods(seeds: &[PodSeed]) -> Vec<ObservedPod> {
    let mut names = BTreeSet::new();
    let mut pods = Vec::new();
    for (i, s) in seeds.iter().enumerate() {
        let kind = StressKind::ALL[s.kind];
        let name = if s.second {
            second_name("lab", kind, s.slot)
        } else {
            slot_name("lab", kind, s.slot)
        };
        if !names.insert(name.clone()) {
            continue;
        }
        let phase = [
            Phase::Pending,
            Phase::Running,
            Phase::Succeeded,
            Phase::Failed,
            Phase::Unknown,
        ][usize::from(s.phase)];
        let scheduled = s.scheduled || phase != Phase::Pending;
        pods.push(ObservedPod {
            name,
            uid: format!("uid-{i}"),
            kind: Some(kind),
            slot: Some(s.slot),
            template_hash: Some(if s.outdated { "old".into() } else { hash(kind) }),
            phase,
            scheduled,
            ready: s.ready && phase == Phase::Running,
            created: Some(now() - Duration::from_secs(s.age)),
            deleting: s.deleting_for.map(|d| now() - Duration::from_secs(d)),
        });
    }
    pods
}

fn desired(replicas: &[u32; 4]) -> Vec<KindDesire> {
    StressKind::ALL
        .iter()
        .zip(replicas)
        .map(|(&kind, &replicas)| KindDesire {
            kind,
            replicas,
            template_hash: hash(kind),
        })
        .collect()
}

/// Live pods of `kind` in `pods` after deleting `deleted_uids` and adding `created` pods.
fn live_after(
    pods: &[ObservedPod],
    plan: &Plan,
    kind: StressKind,
    accepted_creates: usize,
) -> usize {
    let deleted: BTreeSet<&str> = plan.deletes.iter().map(|d| d.uid.as_str()).collect();
    pods.iter()
        .filter(|p| p.kind == Some(kind) && p.is_live() && !deleted.contains(p.uid.as_str()))
        .count()
        + accepted_creates
}

/// The cluster after the plan ran and deletions completed: deleted and terminating pods gone,
/// created pods present as fresh pending pods.
fn next_round(pods: &[ObservedPod], plan: &Plan) -> Vec<ObservedPod> {
    let deleted: BTreeSet<&str> = plan.deletes.iter().map(|d| d.uid.as_str()).collect();
    let mut next: Vec<ObservedPod> = pods
        .iter()
        .filter(|p| p.deleting.is_none() && !deleted.contains(p.uid.as_str()))
        .cloned()
        .collect();
    for (i, c) in plan.creates.iter().enumerate() {
        next.push(ObservedPod {
            name: c.name.clone(),
            uid: format!("new-{i}"),
            kind: Some(c.kind),
            slot: Some(c.slot),
            template_hash: Some(hash(c.kind)),
            phase: Phase::Pending,
            scheduled: false,
            ready: false,
            created: Some(now()),
            deleting: None,
        });
    }
    next
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn exact_views_keep_every_invariant_and_converge_in_two_rounds(
        seeds in prop::collection::vec(pod_seed(), 0..30),
        replicas in prop::array::uniform4(0..7u32),
        backoff_slots in prop::collection::btree_set((0..4usize, 0..8u32), 0..4),
    ) {
        let pods = build_pods(&seeds);
        let desired = desired(&replicas);
        let backoff: BTreeMap<String, SystemTime> = backoff_slots
            .iter()
            .map(|&(k, s)| (slot_name("lab", StressKind::ALL[k], s), now() + Duration::from_secs(60)))
            .collect();
        let p = plan_at(&desired, &pods, &backoff, &[]);

        // Deletes name observed, not-yet-terminating pods, each once.
        let mut seen = BTreeSet::new();
        for d in &p.deletes {
            prop_assert!(seen.insert(d.uid.clone()), "deleted twice: {}", d.name);
            let pod = pods.iter().find(|x| x.uid == d.uid);
            prop_assert!(pod.is_some_and(|x| x.deleting.is_none()), "bad delete {}", d.name);
        }

        let deleted: BTreeSet<&str> = p.deletes.iter().map(|d| d.uid.as_str()).collect();
        for (k, &kind) in StressKind::ALL.iter().enumerate() {
            let want = replicas[k] as usize;
            let of_kind: Vec<&ObservedPod> = pods.iter().filter(|x| x.kind == Some(kind)).collect();
            let taken: BTreeSet<&str> = of_kind.iter().map(|x| x.name.as_str()).collect();
            // Slots still held after the actions: live pods that stay, failed pods until they go.
            let held: BTreeSet<u32> = of_kind
                .iter()
                .filter(|x| x.deleting.is_none())
                .filter(|x| (x.is_live() && !deleted.contains(x.uid.as_str())) || x.phase == Phase::Failed)
                .filter_map(|x| x.slot)
                .collect();
            let creates: Vec<&Create> = p.creates.iter().filter(|c| c.kind == kind).collect();
            let distinct: BTreeSet<u32> = creates.iter().map(|c| c.slot).collect();
            // Never two live pods in one slot, never a name that exists.
            prop_assert_eq!(distinct.len(), creates.len());
            for c in &creates {
                prop_assert!(!held.contains(&c.slot), "slot {} of {} is held", c.slot, kind);
                prop_assert!((c.slot as usize) < want, "slot {} out of range", c.slot);
                prop_assert!(!backoff.contains_key(&slot_name("lab", kind, c.slot)), "slot in backoff");
                prop_assert!(!taken.contains(c.name.as_str()), "{} exists", c.name);
                prop_assert!(
                    c.name == slot_name("lab", kind, c.slot) || c.name == second_name("lab", kind, c.slot),
                    "{} is not a name of slot {}", c.name, c.slot
                );
            }
            // Never more live pods than desired after the actions.
            let after = live_after(&pods, &p, kind, creates.len());
            prop_assert!(after <= want, "{}: {} live after, {} desired", kind, after, want);
            // Every finished, failed, expired or outdated pod is deleted.
            for x in pods.iter().filter(|x| x.kind == Some(kind) && x.deleting.is_none()) {
                let must_go = matches!(x.phase, Phase::Succeeded | Phase::Failed)
                    || x.created.is_some_and(|c| c + LIFETIME <= now())
                    || (want > 0 && x.template_hash.as_deref() != Some(hash(kind).as_str()));
                if must_go {
                    let d = p.deletes.iter().find(|d| d.uid == x.uid);
                    prop_assert!(d.is_some(), "{} should be deleted", x.name);
                    prop_assert!(d.is_some_and(|d| d.reason != DeleteReason::Surplus || want == 0));
                }
            }
            // Creates fill what is missing, limited only by free slots outside backoff that have a
            // free name.
            let kept = after - creates.len();
            let free = (0..replicas[k])
                .filter(|s| !held.contains(s) && !backoff.contains_key(&slot_name("lab", kind, *s)))
                .filter(|s| {
                    !taken.contains(slot_name("lab", kind, *s).as_str())
                        || !taken.contains(second_name("lab", kind, *s).as_str())
                })
                .count();
            prop_assert_eq!(creates.len(), (want - kept).min(free));
        }

        // Second round without backoff: exactly the desired number of live pods, all current.
        let none = BTreeMap::new();
        let first = plan_at(&desired, &pods, &none, &[]);
        let cluster = next_round(&pods, &first);
        let second = plan_at(&desired, &cluster, &none, &[]);
        for (k, &kind) in StressKind::ALL.iter().enumerate() {
            let creates = second.creates.iter().filter(|c| c.kind == kind).count();
            let after = live_after(&cluster, &second, kind, creates);
            prop_assert_eq!(after, replicas[k] as usize, "{} did not converge", kind);
        }
    }

    #[test]
    fn stale_views_never_create_more_than_the_view_missed(
        seeds in prop::collection::vec(pod_seed(), 0..30),
        replicas in prop::array::uniform4(0..7u32),
        // Per pod: 0 = seen as is, 1 = missing from the view, 2 = seen with an older state.
        staleness in prop::collection::vec(0..3u8, 30),
        // Per pod missing from the view: whether this operator created it and recorded it in flight.
        recorded in prop::collection::vec(any::<bool>(), 30),
        ghosts in prop::collection::vec(pod_seed(), 0..5),
    ) {
        let truth = build_pods(&seeds);
        let desired = desired(&replicas);
        let mut view = Vec::new();
        let mut missed_live: BTreeMap<StressKind, usize> = BTreeMap::new();
        let mut in_flight = Vec::new();
        for ((pod, &s), &recorded) in truth.iter().zip(&staleness).zip(&recorded) {
            match s {
                1 => {
                    if recorded && let (Some(kind), Some(slot)) = (pod.kind, pod.slot) {
                        in_flight.push(Create { kind, slot, name: pod.name.clone() });
                    } else if pod.is_live() {
                        *missed_live.entry(pod.kind.unwrap_or(StressKind::Cpu)).or_default() += 1;
                    }
                }
                2 => {
                    // The cache lags: not yet terminating, and a phase one step back.
                    let mut old = pod.clone();
                    old.deleting = None;
                    old.phase = match pod.phase {
                        Phase::Succeeded | Phase::Failed | Phase::Unknown => Phase::Running,
                        _ => Phase::Pending,
                    };
                    old.ready = false;
                    view.push(old);
                }
                _ => view.push(pod.clone()),
            }
        }
        // Ghosts: pods already gone from the cluster that the cache still shows.
        let names: BTreeSet<String> = view.iter().map(|p| p.name.clone()).collect();
        for (i, g) in build_pods(&ghosts).into_iter().enumerate() {
            if !names.contains(&g.name) {
                view.push(ObservedPod { uid: format!("ghost-{i}"), ..g });
            }
        }

        let p = plan_at(&desired, &view, &BTreeMap::new(), &in_flight);

        // Apply to the truth: deletes need the UID to match, creates fail on an existing name.
        let truth_names: BTreeSet<&str> = truth.iter().map(|x| x.name.as_str()).collect();
        for (k, &kind) in StressKind::ALL.iter().enumerate() {
            let accepted = p
                .creates
                .iter()
                .filter(|c| c.kind == kind && !truth_names.contains(c.name.as_str()))
                .count();
            let after = live_after(&truth, &p, kind, accepted);
            // A pod in flight cannot be deleted before it is seen, so a spec scaled below the pods
            // in flight keeps those until the next round.
            let in_flight_live = truth
                .iter()
                .filter(|x| x.kind == Some(kind) && x.is_live())
                .filter(|x| in_flight.iter().any(|c| c.name == x.name))
                .count();
            let bound = (replicas[k] as usize).max(in_flight_live)
                + missed_live.get(&kind).copied().unwrap_or(0);
            prop_assert!(
                after <= bound,
                "{}: {} live after, bound {} (desired {}, missed {:?})",
                kind, after, bound, replicas[k], missed_live.get(&kind)
            );
            // Every create is a distinct in-range slot: the API server's name check does the rest.
            let slots: BTreeSet<u32> = p.creates.iter().filter(|c| c.kind == kind).map(|c| c.slot).collect();
            prop_assert_eq!(slots.len(), p.creates.iter().filter(|c| c.kind == kind).count());
            prop_assert!(slots.iter().all(|&s| s < replicas[k]));
        }
    }
}
