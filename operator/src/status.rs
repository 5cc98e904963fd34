//! The Workload status computed from the spec, the observed pods and the plan (pure).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use stressmix_api::workload::{
    CONDITION_DEGRADED, CONDITION_PROGRESSING, CONDITION_READY, KindStatus, StressKind,
    WorkloadSpec, WorkloadStatus,
};

use crate::planner::{ObservedPod, Phase, Plan};
use crate::runs::{self, EndedRun};
use crate::text::name_list;

/// Pod names a condition message lists before it says how many more there are.
const SHOWN_IN_CONDITIONS: usize = 5;

/// The status for `spec` (at `generation`) given the pods observed, the plan just made and the runs
/// whose pods this reconcile deleted.
///
/// Run counters carry over from `previous` (the status is where they survive restarts) with `ended`
/// folded in. Conditions whose status, reason and message did not change keep their
/// `lastTransitionTime` from `previous`, so an unchanged world yields a status equal to `previous`
/// and no write.
pub fn compute(
    spec: &WorkloadSpec,
    generation: Option<i64>,
    pods: &[ObservedPod],
    plan: &Plan,
    ended: &[&EndedRun],
    previous: Option<&WorkloadStatus>,
    now: Time,
) -> WorkloadStatus {
    // The pods this reconcile deletes no longer run for the Workload (a failed one still counts as
    // failed: that happened).
    let deleted_now: HashSet<&str> = plan.deletes.iter().map(|d| d.name.as_str()).collect();
    let mut kinds = BTreeMap::new();
    let mut desired_total = 0;
    let mut ready_total = 0;
    for kind in StressKind::ALL {
        let desired = spec.desired_replicas(kind);
        let before = previous.and_then(|p| p.kinds.get(kind.as_str()));
        let mut counts = KindStatus {
            desired,
            completed_runs: before.map_or(0, |b| b.completed_runs),
            failed_runs: before.map(|b| b.failed_runs.clone()).unwrap_or_default(),
            last_failure: before.and_then(|b| b.last_failure.clone()),
            last_completion_time: before.and_then(|b| b.last_completion_time.clone()),
            delivered: before.and_then(|b| b.delivered.clone()),
            ..KindStatus::default()
        };
        let of_kind: Vec<&EndedRun> = ended.iter().copied().filter(|r| r.kind == kind).collect();
        runs::fold(&mut counts, spec, kind, &of_kind);
        for pod in pods
            .iter()
            .filter(|p| p.kind == Some(kind) && p.deleting.is_none())
        {
            let staying = !deleted_now.contains(pod.name.as_str());
            match pod.phase {
                Phase::Running if staying => counts.running += 1,
                Phase::Pending if staying => counts.pending += 1,
                Phase::Failed => counts.failed += 1,
                _ => {}
            }
            if pod.ready && pod.is_live() && staying {
                counts.ready += 1;
            }
        }
        let present = counts.running + counts.pending + counts.failed > 0;
        let ran = counts.completed_runs > 0 || !counts.failed_runs.is_empty();
        if spec.entry(kind).is_some() || present || ran {
            desired_total += desired;
            ready_total += counts.ready;
            kinds.insert(kind.as_str().to_owned(), counts);
        }
    }

    let terminating = pods.iter().filter(|p| p.deleting.is_some()).count();
    let remaining = pods.len();

    let not_ready: Vec<String> = kinds
        .iter()
        .filter(|(_, k)| k.ready < k.desired)
        .map(|(name, k)| format!("{name} {}/{} ready", k.ready, k.desired))
        .collect();
    let ready = if spec.suspend {
        if remaining == 0 {
            (
                "True",
                "Suspended",
                "suspended: no pods are running".to_owned(),
            )
        } else {
            (
                "False",
                "Suspending",
                format!("suspended: {remaining} pods still being removed"),
            )
        }
    } else if not_ready.is_empty() {
        (
            "True",
            "AllReady",
            format!("{ready_total} of {desired_total} pods ready"),
        )
    } else {
        ("False", "PodsNotReady", not_ready.join(", "))
    };

    let progressing = if !plan.deletes.is_empty() || !plan.creates.is_empty() {
        let mut parts = Vec::new();
        if !plan.creates.is_empty() {
            parts.push(format!("creating {}", plan.creates.len()));
        }
        let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &plan.deletes {
            *by_reason.entry(d.reason.as_str()).or_default() += 1;
        }
        for (reason, n) in by_reason {
            parts.push(format!("deleting {n} {reason}"));
        }
        ("True", "Reconciling", parts.join(", "))
    } else if terminating > 0 {
        (
            "True",
            "Terminating",
            format!("waiting for {terminating} pods to terminate"),
        )
    } else if !not_ready.is_empty() && !spec.suspend {
        (
            "True",
            "WaitingForPods",
            "waiting for pods to become ready".to_owned(),
        )
    } else {
        ("False", "Stable", "no changes in progress".to_owned())
    };

    let failed: i32 = kinds.values().map(|k| k.failed).sum();
    let oom_killed: Vec<String> = kinds
        .iter()
        .filter(|(_, k)| runs::last_run_oom_killed(k))
        .map(|(name, k)| {
            let pod = k.last_failure.as_ref().map_or("", |f| f.pod.as_str());
            format!("{name} ({pod})")
        })
        .collect();
    let degraded = if !plan.stuck.is_empty() {
        (
            "True",
            "PodStuckTerminating",
            format!(
                "pods stuck terminating block their slots: {}",
                name_list(&plan.stuck, SHOWN_IN_CONDITIONS)
            ),
        )
    } else if !plan.backing_off.is_empty() || failed > 0 || !oom_killed.is_empty() {
        let mut parts = Vec::new();
        // The OOM killer is the cause the user can act on (the memory limit): it names the reason.
        if !oom_killed.is_empty() {
            parts.push(format!(
                "the latest run was killed by the OOM killer (memory limit too low for the load): {}",
                name_list(&oom_killed, SHOWN_IN_CONDITIONS)
            ));
        }
        if failed > 0 {
            parts.push(format!("{failed} pods failed"));
        }
        if !plan.backing_off.is_empty() {
            parts.push(format!(
                "slots backing off after failures: {}",
                name_list(&plan.backing_off, SHOWN_IN_CONDITIONS)
            ));
        }
        let reason = if oom_killed.is_empty() {
            "PodsFailing"
        } else {
            "RunsOOMKilled"
        };
        ("True", reason, parts.join("; "))
    } else {
        (
            "False",
            "AsExpected",
            "nothing blocks the desired state".to_owned(),
        )
    };

    let conditions = [
        (CONDITION_READY, ready),
        (CONDITION_PROGRESSING, progressing),
        (CONDITION_DEGRADED, degraded),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| {
        let old = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == type_));
        let unchanged =
            old.is_some_and(|c| c.status == status && c.reason == reason && c.message == message);
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: match old {
                Some(c) if unchanged || c.status == status => c.last_transition_time.clone(),
                _ => now.clone(),
            },
        }
    })
    .collect();

    WorkloadStatus {
        observed_generation: generation,
        desired: desired_total,
        ready: ready_total,
        completed_runs: kinds.values().map(|k| k.completed_runs).sum(),
        failed_runs: kinds.values().flat_map(|k| k.failed_runs.values()).sum(),
        kinds,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::{Create, Delete, DeleteReason};
    use std::time::{Duration, SystemTime};
    use stressmix_api::workload::MixEntry;

    fn spec(replicas: i32) -> WorkloadSpec {
        WorkloadSpec {
            suspend: false,
            mix: vec![MixEntry {
                kind: StressKind::Cpu,
                replicas,
                workers: 1,
                load: None,
                bytes: None,
            }],
            template: Default::default(),
        }
    }

    fn pod(slot: u32, ready: bool) -> ObservedPod {
        ObservedPod {
            name: format!("lab-cpu-{slot}"),
            uid: format!("u{slot}"),
            kind: Some(StressKind::Cpu),
            slot: Some(slot),
            template_hash: Some("h".into()),
            phase: if ready {
                Phase::Running
            } else {
                Phase::Pending
            },
            scheduled: true,
            ready,
            created: Some(SystemTime::UNIX_EPOCH),
            deleting: None,
        }
    }

    fn time(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("valid time"))
    }

    fn condition<'a>(s: &'a WorkloadStatus, type_: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    #[test]
    fn all_ready_is_ready_and_stable_and_recomputing_changes_nothing() {
        let pods = [pod(0, true), pod(1, true)];
        let first = compute(
            &spec(2),
            Some(4),
            &pods,
            &Plan::default(),
            &[],
            None,
            time(10),
        );
        assert_eq!((first.desired, first.ready), (2, 2));
        assert_eq!(first.observed_generation, Some(4));
        assert_eq!(
            first.kinds["cpu"],
            KindStatus {
                desired: 2,
                ready: 2,
                running: 2,
                pending: 0,
                failed: 0,
                ..KindStatus::default()
            }
        );
        assert_eq!(condition(&first, "Ready").status, "True");
        assert_eq!(condition(&first, "Progressing").reason, "Stable");
        assert_eq!(condition(&first, "Degraded").status, "False");
        let again = compute(
            &spec(2),
            Some(4),
            &pods,
            &Plan::default(),
            &[],
            Some(&first),
            time(99),
        );
        assert_eq!(
            again, first,
            "same world, same status (transition times kept)"
        );
    }

    #[test]
    fn missing_pods_are_not_ready_and_progressing() {
        let plan = Plan {
            creates: vec![Create {
                kind: StressKind::Cpu,
                slot: 1,
                name: "lab-cpu-1".into(),
            }],
            ..Plan::default()
        };
        let s = compute(
            &spec(2),
            Some(1),
            &[pod(0, false)],
            &plan,
            &[],
            None,
            time(1),
        );
        assert_eq!(condition(&s, "Ready").reason, "PodsNotReady");
        assert_eq!(condition(&s, "Ready").message, "cpu 0/2 ready");
        assert_eq!(condition(&s, "Progressing").message, "creating 1");
        assert_eq!(s.kinds["cpu"].pending, 1);
    }

    #[test]
    fn a_stuck_pod_is_degraded_and_failures_are_reported() {
        let plan = Plan {
            stuck: vec!["lab-cpu-0".into()],
            ..Plan::default()
        };
        let s = compute(&spec(1), None, &[], &plan, &[], None, time(1));
        assert_eq!(condition(&s, "Degraded").reason, "PodStuckTerminating");
        assert!(condition(&s, "Degraded").message.contains("lab-cpu-0"));

        let mut failed = pod(0, false);
        failed.phase = Phase::Failed;
        let plan = Plan {
            deletes: vec![Delete {
                name: "lab-cpu-0".into(),
                uid: "u0".into(),
                kind: Some(StressKind::Cpu),
                slot: Some(0),
                reason: DeleteReason::Failed,
            }],
            backing_off: vec!["lab-cpu-0".into()],
            requeue_after: Some(Duration::from_secs(5)),
            ..Plan::default()
        };
        let s = compute(&spec(1), None, &[failed], &plan, &[], None, time(1));
        assert_eq!(condition(&s, "Degraded").reason, "PodsFailing");
        assert_eq!(s.kinds["cpu"].failed, 1);
        assert_eq!(condition(&s, "Progressing").message, "deleting 1 failed");
    }

    #[test]
    fn pods_this_reconcile_deletes_are_not_counted_running_or_ready() {
        let mut sp = spec(2);
        sp.suspend = true;
        let delete = |slot: u32| Delete {
            name: format!("lab-cpu-{slot}"),
            uid: format!("u{slot}"),
            kind: Some(StressKind::Cpu),
            slot: Some(slot),
            reason: DeleteReason::Surplus,
        };
        let plan = Plan {
            deletes: vec![delete(0), delete(1)],
            ..Plan::default()
        };
        let s = compute(
            &sp,
            Some(2),
            &[pod(0, true), pod(1, true)],
            &plan,
            &[],
            None,
            time(1),
        );
        assert_eq!((s.ready, s.kinds["cpu"].running), (0, 0));
        assert_eq!(condition(&s, "Progressing").message, "deleting 2 surplus");
    }

    #[test]
    fn suspended_reports_zero_desired_and_says_so() {
        let mut sp = spec(3);
        sp.suspend = true;
        let s = compute(&sp, None, &[], &Plan::default(), &[], None, time(1));
        assert_eq!(s.desired, 0);
        assert_eq!(condition(&s, "Ready").reason, "Suspended");
        let s = compute(
            &sp,
            None,
            &[pod(0, true)],
            &Plan::default(),
            &[],
            None,
            time(1),
        );
        assert_eq!(condition(&s, "Ready").reason, "Suspending");
    }

    #[test]
    fn a_changed_condition_gets_a_new_transition_time() {
        let first = compute(
            &spec(1),
            None,
            &[pod(0, true)],
            &Plan::default(),
            &[],
            None,
            time(10),
        );
        let later = compute(
            &spec(1),
            None,
            &[],
            &Plan::default(),
            &[],
            Some(&first),
            time(20),
        );
        assert_eq!(condition(&later, "Ready").last_transition_time, time(20));
        assert_eq!(condition(&later, "Degraded").last_transition_time, time(10));
    }

    #[test]
    fn runs_carry_over_fold_in_and_an_oom_kill_degrades() {
        use crate::runs::EndedRun;
        let oom = EndedRun {
            pod: "lab-cpu-0".into(),
            kind: StressKind::Cpu,
            succeeded: false,
            reason: "OOMKilled".into(),
            exit_code: Some(137),
            message: String::new(),
            time: Some(time(5)),
            summary: None,
        };
        let done = EndedRun {
            pod: "lab-cpu-1".into(),
            succeeded: true,
            reason: "Completed".into(),
            exit_code: Some(0),
            time: Some(time(6)),
            ..oom.clone()
        };
        let pods = [pod(0, true)];
        let first = compute(
            &spec(1),
            None,
            &pods,
            &Plan::default(),
            &[&oom],
            None,
            time(7),
        );
        assert_eq!((first.completed_runs, first.failed_runs), (0, 1));
        assert_eq!(condition(&first, "Degraded").reason, "RunsOOMKilled");
        // Nothing new: the counters stay and the status is the same (no write).
        let again = compute(
            &spec(1),
            None,
            &pods,
            &Plan::default(),
            &[],
            Some(&first),
            time(8),
        );
        assert_eq!(again, first);
        // A completion after the kill ends the episode and adds up.
        let later = compute(
            &spec(1),
            None,
            &pods,
            &Plan::default(),
            &[&done],
            Some(&first),
            time(9),
        );
        assert_eq!((later.completed_runs, later.failed_runs), (1, 1));
        assert_eq!(later.kinds["cpu"].failed_runs["OOMKilled"], 1);
        assert_eq!(condition(&later, "Degraded").status, "False");
        // A kind dropped from the spec keeps its run history.
        let none = WorkloadSpec {
            mix: Vec::new(),
            ..spec(0)
        };
        let dropped = compute(
            &none,
            None,
            &[],
            &Plan::default(),
            &[],
            Some(&later),
            time(10),
        );
        assert_eq!(dropped.completed_runs, 1);
    }
}
