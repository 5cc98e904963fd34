//! Table tests of the planner: one case per rule (finished, failed, expired, outdated, surplus rank,
//! terminating and stuck pods, a slot's second name, pods in flight, backoff, suspend, foreign pods,
//! requeue).

mod planner_support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use planner_support::{hash, now, plan_at};

use stressmix_api::workload::StressKind::{self, Cpu, Disk, Memory};
use stressmix_operator::planner::{
    Create, DeleteReason, KindDesire, ObservedPod, Phase, Plan, parse_slot, second_name, slot_name,
};

fn ago(secs: u64) -> SystemTime {
    now() - Duration::from_secs(secs)
}

/// A ready, running, current pod in `slot` of `kind`, created 10 s ago.
fn pod(kind: StressKind, slot: u32) -> ObservedPod {
    ObservedPod {
        name: slot_name("lab", kind, slot),
        uid: format!("uid-{kind}-{slot}"),
        kind: Some(kind),
        slot: Some(slot),
        template_hash: Some(hash(kind)),
        phase: Phase::Running,
        scheduled: true,
        ready: true,
        created: Some(ago(10)),
        deleting: None,
    }
}

fn want(kind: StressKind, replicas: u32) -> KindDesire {
    KindDesire {
        kind,
        replicas,
        template_hash: hash(kind),
    }
}

fn run(desired: &[KindDesire], pods: &[ObservedPod]) -> Plan {
    run_with_backoff(desired, pods, &BTreeMap::new())
}

fn run_with_backoff(
    desired: &[KindDesire],
    pods: &[ObservedPod],
    backoff: &BTreeMap<String, SystemTime>,
) -> Plan {
    plan_at(desired, pods, backoff, &[])
}

fn deleted(plan: &Plan) -> Vec<(String, DeleteReason)> {
    plan.deletes
        .iter()
        .map(|d| (d.name.clone(), d.reason))
        .collect()
}

fn created(plan: &Plan) -> Vec<String> {
    plan.creates.iter().map(|c| c.name.clone()).collect()
}

#[test]
fn an_empty_workload_gets_every_slot_created() {
    let p = run(&[want(Cpu, 2), want(Memory, 1)], &[]);
    assert_eq!(created(&p), ["lab-cpu-0", "lab-cpu-1", "lab-memory-0"]);
    assert_eq!(
        p.creates[2],
        Create {
            kind: Memory,
            slot: 0,
            name: "lab-memory-0".into()
        }
    );
    assert!(p.deletes.is_empty());
    assert_eq!(p.requeue_after, None, "nothing time-based to wait for");
}

#[test]
fn a_complete_workload_does_nothing_and_wakes_at_the_next_expiry() {
    let mut older = pod(Cpu, 1);
    older.created = Some(ago(100));
    let p = run(&[want(Cpu, 2)], &[pod(Cpu, 0), older]);
    assert!(p.deletes.is_empty() && p.creates.is_empty());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(50)));
}

#[test]
fn a_finished_pod_is_replaced_at_once_under_the_slots_second_name() {
    let mut done = pod(Cpu, 0);
    done.phase = Phase::Succeeded;
    done.ready = false;
    let p = run(&[want(Cpu, 2)], &[done.clone(), pod(Cpu, 1)]);
    assert_eq!(deleted(&p), [("lab-cpu-0".into(), DeleteReason::Finished)]);
    assert_eq!(
        created(&p),
        ["lab-cpu-0-b"],
        "the first name is still taken"
    );

    // Next round: the finished pod is terminating and its replacement live: nothing to do.
    done.deleting = Some(ago(0));
    let mut replacement = pod(Cpu, 0);
    replacement.name = second_name("lab", Cpu, 0);
    replacement.uid = "uid-b".into();
    let p = run(&[want(Cpu, 2)], &[done, replacement.clone(), pod(Cpu, 1)]);
    assert!(p.deletes.is_empty() && p.creates.is_empty());

    // When the second-name pod finishes in turn, the first name is free again.
    replacement.phase = Phase::Succeeded;
    let p = run(&[want(Cpu, 2)], &[replacement, pod(Cpu, 1)]);
    assert_eq!(
        deleted(&p),
        [("lab-cpu-0-b".into(), DeleteReason::Finished)]
    );
    assert_eq!(created(&p), ["lab-cpu-0"]);
}

#[test]
fn a_finished_pod_does_not_count_so_a_free_slot_is_filled_at_once() {
    let mut done = pod(Cpu, 3);
    done.phase = Phase::Succeeded;
    let p = run(&[want(Cpu, 2)], &[done, pod(Cpu, 1)]);
    assert_eq!(deleted(&p), [("lab-cpu-3".into(), DeleteReason::Finished)]);
    assert_eq!(created(&p), ["lab-cpu-0"]);
}

#[test]
fn a_failed_pod_is_deleted_as_failed_and_holds_its_slot_for_that_round() {
    let mut failed = pod(Memory, 0);
    failed.phase = Phase::Failed;
    let p = run(&[want(Memory, 1)], &[failed.clone()]);
    assert_eq!(deleted(&p), [("lab-memory-0".into(), DeleteReason::Failed)]);
    assert_eq!(
        p.deletes[0].uid, "uid-memory-0",
        "deletes carry the UID precondition"
    );
    assert_eq!(p.deletes[0].slot, Some(0));
    assert!(
        p.creates.is_empty(),
        "the replacement waits for the failure to enter the slot's backoff"
    );
    // Next round it is terminating and its failure is in the slot's backoff (here: none left), so
    // the replacement goes in under the second name.
    failed.deleting = Some(ago(0));
    let p = run(&[want(Memory, 1)], &[failed]);
    assert_eq!(created(&p), ["lab-memory-0-b"]);
}

#[test]
fn an_expired_pod_is_deleted_at_its_lifetime_not_before() {
    let mut old = pod(Cpu, 0);
    old.created = Some(ago(150));
    let mut young = pod(Cpu, 1);
    young.created = Some(ago(149));
    let p = run(&[want(Cpu, 2)], &[old, young]);
    assert_eq!(deleted(&p), [("lab-cpu-0".into(), DeleteReason::Expired)]);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));
}

#[test]
fn an_outdated_pod_is_replaced() {
    let mut outdated = pod(Disk, 0);
    outdated.template_hash = Some("old".into());
    let mut unlabelled = pod(Disk, 1);
    unlabelled.template_hash = None;
    let p = run(&[want(Disk, 2)], &[outdated, unlabelled]);
    assert_eq!(
        deleted(&p),
        [
            ("lab-disk-0".into(), DeleteReason::Outdated),
            ("lab-disk-1".into(), DeleteReason::Outdated)
        ]
    );
}

#[test]
fn surplus_goes_by_rank_unscheduled_pending_not_ready_then_ready() {
    let mut unscheduled = pod(Cpu, 0);
    unscheduled.scheduled = false;
    unscheduled.phase = Phase::Pending;
    unscheduled.ready = false;
    let mut pending = pod(Cpu, 1);
    pending.phase = Phase::Pending;
    pending.ready = false;
    let mut not_ready = pod(Cpu, 2);
    not_ready.ready = false;
    let ready = pod(Cpu, 3);
    let all = [ready, not_ready, pending, unscheduled];
    let order = |replicas| {
        deleted(&run(&[want(Cpu, replicas)], &all))
            .into_iter()
            .map(|(n, r)| {
                assert_eq!(r, DeleteReason::Surplus);
                n
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(order(3), ["lab-cpu-0"]);
    assert_eq!(order(2), ["lab-cpu-0", "lab-cpu-1"]);
    assert_eq!(order(1), ["lab-cpu-0", "lab-cpu-1", "lab-cpu-2"]);
    assert_eq!(
        order(0),
        ["lab-cpu-0", "lab-cpu-1", "lab-cpu-2", "lab-cpu-3"]
    );
    // The ready pod in slot 3 survives a scale to 1 even though slot 3 is out of range.
    assert!(run(&[want(Cpu, 1)], &all).creates.is_empty());
}

#[test]
fn among_equal_ranks_the_higher_slot_goes_first() {
    let pods: Vec<_> = (0..4).map(|s| pod(Memory, s)).collect();
    let p = run(&[want(Memory, 2)], &pods);
    assert_eq!(
        deleted(&p),
        [
            ("lab-memory-3".into(), DeleteReason::Surplus),
            ("lab-memory-2".into(), DeleteReason::Surplus)
        ]
    );
}

#[test]
fn a_terminating_pod_is_replaced_under_the_other_name_at_once() {
    let mut terminating = pod(Cpu, 0);
    terminating.deleting = Some(ago(5));
    let p = run(&[want(Cpu, 2)], &[terminating.clone()]);
    assert!(p.deletes.is_empty(), "never delete twice");
    assert_eq!(created(&p), ["lab-cpu-0-b", "lab-cpu-1"]);
    assert!(p.stuck.is_empty() && p.requeue_after.is_none());
}

#[test]
fn a_slot_whose_two_names_are_terminating_waits_and_is_reported_when_stuck() {
    let mut first = pod(Cpu, 0);
    first.deleting = Some(ago(5));
    let mut second = pod(Cpu, 0);
    second.name = second_name("lab", Cpu, 0);
    second.uid = "uid-b".into();
    second.deleting = Some(ago(2));
    let p = run(&[want(Cpu, 2)], &[first.clone(), second.clone()]);
    assert!(p.deletes.is_empty(), "never delete twice");
    assert_eq!(created(&p), ["lab-cpu-1"], "slot 0 has no free name");
    assert!(p.stuck.is_empty());
    assert_eq!(
        p.requeue_after,
        Some(Duration::from_secs(25)),
        "look again when the older one would be stuck"
    );

    first.deleting = Some(ago(31));
    let p = run(&[want(Cpu, 2)], &[first, second, pod(Cpu, 1)]);
    assert_eq!(p.stuck, ["lab-cpu-0", "lab-cpu-0-b"]);
    assert!(p.creates.is_empty());
}

#[test]
fn pods_in_flight_hold_their_slots_and_count_but_are_never_deleted() {
    let in_flight = [Create {
        kind: Cpu,
        slot: 0,
        name: second_name("lab", Cpu, 0),
    }];
    let run_in_flight = |desired: &[KindDesire], pods: &[ObservedPod]| {
        plan_at(desired, pods, &BTreeMap::new(), &in_flight)
    };
    // The view already lost the old pod of slot 0 but not yet shows its replacement.
    let p = run_in_flight(&[want(Cpu, 2)], &[pod(Cpu, 1)]);
    assert!(
        p.creates.is_empty(),
        "slot 0 is filled by the pod in flight"
    );
    let p = run_in_flight(&[want(Cpu, 3)], &[pod(Cpu, 1)]);
    assert_eq!(created(&p), ["lab-cpu-2"]);
    // Scaled down to one: the seen pod goes, the unseen one stays until it is seen.
    let p = run_in_flight(&[want(Cpu, 1)], &[pod(Cpu, 1)]);
    assert_eq!(deleted(&p), [("lab-cpu-1".into(), DeleteReason::Surplus)]);
    let p = run_in_flight(&[want(Cpu, 0)], &[]);
    assert!(p.deletes.is_empty() && p.creates.is_empty());
}

#[test]
fn a_stuck_pod_outside_the_needed_slots_is_not_reported() {
    let mut terminating = pod(Cpu, 5);
    terminating.deleting = Some(ago(300));
    let p = run(&[want(Cpu, 1)], &[terminating]);
    assert!(p.stuck.is_empty());
    assert_eq!(created(&p), ["lab-cpu-0"]);
}

#[test]
fn a_slot_in_backoff_is_skipped_until_the_backoff_ends() {
    let backoff = BTreeMap::from([("lab-cpu-0".to_owned(), now() + Duration::from_secs(20))]);
    let p = run_with_backoff(&[want(Cpu, 2)], &[], &backoff);
    assert_eq!(created(&p), ["lab-cpu-1"]);
    assert_eq!(p.backing_off, ["lab-cpu-0"]);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));

    let expired = BTreeMap::from([("lab-cpu-0".to_owned(), ago(1))]);
    let p = run_with_backoff(&[want(Cpu, 2)], &[], &expired);
    assert_eq!(created(&p), ["lab-cpu-0", "lab-cpu-1"]);
}

#[test]
fn suspended_or_unlisted_kinds_lose_every_pod() {
    let pods = [pod(Cpu, 0), pod(Cpu, 1), pod(Disk, 0)];
    let p = run(&[want(Cpu, 0)], &pods);
    assert_eq!(p.deletes.len(), 3);
    assert!(p.deletes.iter().all(|d| d.reason == DeleteReason::Surplus));
    assert!(p.creates.is_empty());
}

#[test]
fn pods_without_a_readable_kind_or_slot_are_removed() {
    let mut no_kind = pod(Cpu, 0);
    no_kind.kind = None;
    no_kind.name = "lab-gpu-0".into();
    let mut odd_name = pod(Cpu, 0);
    odd_name.slot = None;
    odd_name.name = "lab-cpu-x".into();
    let p = run(&[want(Cpu, 1)], &[no_kind, odd_name]);
    assert_eq!(
        deleted(&p),
        [
            ("lab-gpu-0".into(), DeleteReason::Surplus),
            ("lab-cpu-x".into(), DeleteReason::Surplus)
        ]
    );
    assert_eq!(created(&p), ["lab-cpu-0"]);
}

#[test]
fn finished_and_terminating_pods_are_not_counted_as_live() {
    let mut done = pod(Cpu, 0);
    done.phase = Phase::Failed;
    assert!(!done.is_live());
    let mut terminating = pod(Cpu, 0);
    terminating.deleting = Some(ago(1));
    assert!(!terminating.is_live());
    assert!(pod(Cpu, 0).is_live());
}

#[test]
fn slot_names_round_trip_and_reject_lookalikes() {
    assert_eq!(slot_name("lab", Memory, 12), "lab-memory-12");
    assert_eq!(parse_slot("lab", Memory, "lab-memory-12"), Some(12));
    assert_eq!(second_name("lab", Memory, 12), "lab-memory-12-b");
    assert_eq!(parse_slot("lab", Memory, "lab-memory-12-b"), Some(12));
    assert_eq!(parse_slot("lab", Cpu, "lab-cpu-b"), None);
    assert_eq!(parse_slot("lab", Cpu, "lab-cpu-1-c"), None);
    assert_eq!(parse_slot("lab", Cpu, "lab-cpu-1-b-b"), None);
    assert_eq!(parse_slot("my-lab", Cpu, "my-lab-cpu-0"), Some(0));
    assert_eq!(parse_slot("lab", Cpu, "lab-cpu-01"), None);
    assert_eq!(parse_slot("lab", Cpu, "lab-cpu-"), None);
    assert_eq!(parse_slot("lab", Cpu, "lab-cpu-1a"), None);
    assert_eq!(parse_slot("lab", Cpu, "lab-memory-1"), None);
    assert_eq!(parse_slot("lab", Cpu, "other-cpu-1"), None);
    assert_eq!(parse_slot("lab", Cpu, "lab-cpu-99999999999"), None);
}
