//! Runs: how a finished stress pod's run ended (its container's terminated state and the summary in
//! its termination message), and the folding of ended runs into a kind's status (pure).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use stressmix_api::run_summary::RunSummary;
use stressmix_api::workload::quantity::{parse_milli, parse_whole};
use stressmix_api::workload::{Delivered, KindStatus, RunFailure, StressKind, WorkloadSpec};

use crate::slim::SlimPod;
use crate::text::truncate;

/// Failure reasons a kind's status keeps apart; later new reasons count under [`OTHER_REASON`].
pub const MAX_FAILURE_REASONS: usize = 8;
/// The reason under which failures beyond [`MAX_FAILURE_REASONS`] count.
pub const OTHER_REASON: &str = "Other";
/// Longest `lastFailure.message`.
pub const MAX_FAILURE_MESSAGE: usize = 1024;
/// The container reason of a run the kernel's OOM killer ended.
pub const OOM_KILLED: &str = "OOMKilled";
/// Weight of the newest run in `delivered` (the rest is the average of the runs before it).
const NEWEST_RUN_WEIGHT: f64 = 0.2;

/// One run that ended: a pod in phase Succeeded or Failed.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedRun {
    /// The pod that ran it.
    pub pod: String,
    /// Its stressor kind.
    pub kind: StressKind,
    /// Phase Succeeded (the container exited 0).
    pub succeeded: bool,
    /// The container's reason (Completed, Error, OOMKilled...), else the pod's (Evicted...).
    pub reason: String,
    /// The container's exit code, when it ended.
    pub exit_code: Option<i32>,
    /// The container's termination message, else the pod's message.
    pub message: String,
    /// When the container ended.
    pub time: Option<Time>,
    /// The stress program's summary, when the message holds one.
    pub summary: Option<RunSummary>,
}

impl EndedRun {
    /// The run of `pod` (of `kind`) if it ended, from what the pod cache holds.
    pub fn of(kind: StressKind, pod: &SlimPod) -> Option<EndedRun> {
        let succeeded = match pod.status.phase.as_deref() {
            Some("Succeeded") => true,
            Some("Failed") => false,
            _ => return None,
        };
        let terminated = pod.status.terminated.as_ref();
        let reason = terminated
            .and_then(|t| t.reason.clone())
            .or_else(|| pod.status.reason.clone())
            .unwrap_or_else(|| if succeeded { "Completed" } else { "Unknown" }.to_owned());
        let message = terminated
            .and_then(|t| t.message.clone())
            .or_else(|| pod.status.message.clone())
            .unwrap_or_default();
        let summary = serde_json::from_str::<RunSummary>(message.trim()).ok();
        Some(EndedRun {
            pod: pod.name_any(),
            kind,
            succeeded,
            reason,
            exit_code: terminated.map(|t| t.exit_code),
            message,
            time: terminated.and_then(|t| t.finished_at.clone()),
            summary,
        })
    }

    /// The OOM killer ended it.
    pub fn oom_killed(&self) -> bool {
        !self.succeeded && self.reason == OOM_KILLED
    }
}

/// Folds `runs` (all of `kind`) into `status`: counters, the last failure and completion, and what
/// the completed runs delivered against `spec`.
pub fn fold(status: &mut KindStatus, spec: &WorkloadSpec, kind: StressKind, runs: &[&EndedRun]) {
    for run in runs {
        if run.succeeded {
            status.completed_runs += 1;
            if later(run.time.as_ref(), status.last_completion_time.as_ref()) {
                status.last_completion_time = run.time.clone();
            }
            if let Some(sample) = run.summary.as_ref().and_then(|s| sample(kind, spec, s)) {
                blend(&mut status.delivered, sample);
            }
        } else {
            let reason = if status.failed_runs.contains_key(&run.reason)
                || status.failed_runs.len() + 1 < MAX_FAILURE_REASONS
            {
                run.reason.clone()
            } else {
                OTHER_REASON.to_owned()
            };
            *status.failed_runs.entry(reason).or_default() += 1;
            let newest = status
                .last_failure
                .as_ref()
                .is_none_or(|f| later(run.time.as_ref(), f.time.as_ref()));
            if newest {
                status.last_failure = Some(RunFailure {
                    pod: run.pod.clone(),
                    reason: run.reason.clone(),
                    exit_code: run.exit_code,
                    message: truncate(run.message.clone(), MAX_FAILURE_MESSAGE),
                    time: run.time.clone(),
                });
            }
        }
    }
}

/// The kind's latest run was killed by the OOM killer (no completion since).
pub fn last_run_oom_killed(status: &KindStatus) -> bool {
    status.last_failure.as_ref().is_some_and(|f| {
        f.reason == OOM_KILLED && !later(status.last_completion_time.as_ref(), f.time.as_ref())
    })
}

/// `a` is later than `b`; an unknown time is never later, and anything is later than nothing.
fn later(a: Option<&Time>, b: Option<&Time>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.0 > b.0,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// One run's delivery: (value, unit, what the spec asks in that unit).
struct Sample {
    value: f64,
    unit: &'static str,
    requested: Option<f64>,
}

fn sample(kind: StressKind, spec: &WorkloadSpec, summary: &RunSummary) -> Option<Sample> {
    let seconds = summary.duration_seconds;
    let per_second = |amount: f64| (seconds > 0.0).then(|| amount / seconds);
    let entry = spec.entry(kind);
    // Counters and limits far below 2^53: exact enough as f64.
    #[allow(clippy::cast_precision_loss)]
    let (value, unit, requested) = match kind {
        StressKind::Cpu => {
            let limit = spec
                .template
                .resources
                .limits
                .as_ref()
                .and_then(|l| l.cpu.as_ref());
            let cores = limit
                .and_then(|q| parse_milli(&q.0).ok())
                .map(|m| m as f64 / 1000.0);
            (per_second(summary.cpu_seconds)?, "cores", cores)
        }
        StressKind::Memory => {
            let bytes = entry
                .and_then(|e| e.bytes.as_ref())
                .and_then(|q| parse_whole(&q.0).ok())
                .map(|b| b as f64);
            (summary.consumed.held_bytes as f64, "bytes", bytes)
        }
        StressKind::Io => (
            per_second(summary.consumed.operations as f64)?,
            "ops/s",
            None,
        ),
        StressKind::Disk => (
            per_second(summary.consumed.bytes_written as f64)?,
            "bytes/s",
            None,
        ),
    };
    Some(Sample {
        value,
        unit,
        requested,
    })
}

fn blend(delivered: &mut Option<Delivered>, sample: Sample) {
    let (runs, value) = match delivered {
        Some(d) if d.unit == sample.unit => (
            d.runs + 1,
            d.value * (1.0 - NEWEST_RUN_WEIGHT) + sample.value * NEWEST_RUN_WEIGHT,
        ),
        _ => (1, sample.value),
    };
    let ratio = sample
        .requested
        .filter(|r| *r > 0.0)
        .map(|requested| value / requested);
    *delivered = Some(Delivered {
        runs,
        value,
        unit: sample.unit.to_owned(),
        requested: sample.requested,
        ratio,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use stressmix_api::run_summary::Consumed;

    fn spec() -> WorkloadSpec {
        serde_json::from_value(serde_json::json!({
            "mix": [{"kind": "cpu", "replicas": 1}, {"kind": "memory", "replicas": 1, "bytes": "100Mi"}],
            "template": {"resources": {"limits": {"cpu": "100m", "memory": "128Mi"}}}
        }))
        .expect("spec")
    }

    fn at(seconds: i64) -> Option<Time> {
        Timestamp::from_second(seconds).ok().map(Time)
    }

    fn summary(kind: &str, cpu_seconds: f64, held_bytes: u64) -> RunSummary {
        RunSummary {
            kind: kind.into(),
            workers: 1,
            duration_seconds: 30.0,
            stopped_by_signal: false,
            cpu_seconds,
            resident_bytes: held_bytes,
            max_resident_bytes: held_bytes,
            consumed: Consumed {
                held_bytes,
                ..Consumed::default()
            },
        }
    }

    fn run(
        kind: StressKind,
        pod: &str,
        reason: &str,
        t: i64,
        summary: Option<RunSummary>,
    ) -> EndedRun {
        EndedRun {
            pod: pod.into(),
            kind,
            succeeded: reason == "Completed",
            reason: reason.into(),
            exit_code: Some(if reason == "Completed" { 0 } else { 137 }),
            message: summary
                .as_ref()
                .and_then(|s| serde_json::to_string(s).ok())
                .unwrap_or_else(|| "x".repeat(5000)),
            time: at(t),
            summary,
        }
    }

    #[test]
    fn the_run_of_a_pod_comes_from_its_status() {
        let line = serde_json::to_string(&summary("cpu", 3.0, 0)).expect("json");
        let pod: SlimPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "lab-cpu-0"},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "stress",
              "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": line,
                "finishedAt": "2026-12-05T10:00:00Z"}}}]}
        }))
        .expect("pod");
        let r = EndedRun::of(StressKind::Cpu, &pod).expect("ended");
        assert!(r.succeeded && r.reason == "Completed" && r.exit_code == Some(0));
        assert_eq!(r.summary.as_ref().map(|s| s.cpu_seconds), Some(3.0));

        let evicted: SlimPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "lab-cpu-1"},
            "status": {"phase": "Failed", "reason": "Evicted", "message": "node low on memory"}
        }))
        .expect("pod");
        let r = EndedRun::of(StressKind::Cpu, &evicted).expect("ended");
        assert_eq!((r.reason.as_str(), r.exit_code), ("Evicted", None));
        assert_eq!(r.message, "node low on memory");

        let running: SlimPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "status": {"phase": "Running"}
        }))
        .expect("pod");
        assert!(EndedRun::of(StressKind::Cpu, &running).is_none());
    }

    #[test]
    fn runs_fold_into_counters_the_last_failure_and_what_was_delivered() {
        let spec = spec();
        let mut status = KindStatus::default();
        let ok1 = run(
            StressKind::Cpu,
            "a",
            "Completed",
            10,
            Some(summary("cpu", 3.0, 0)),
        );
        let ok2 = run(
            StressKind::Cpu,
            "b",
            "Completed",
            20,
            Some(summary("cpu", 2.7, 0)),
        );
        let oom = run(StressKind::Cpu, "c", OOM_KILLED, 30, None);
        fold(&mut status, &spec, StressKind::Cpu, &[&ok1, &ok2, &oom]);
        assert_eq!(status.completed_runs, 2);
        assert_eq!(status.failed_runs.get(OOM_KILLED), Some(&1));
        let failure = status.last_failure.clone().expect("failure");
        assert_eq!((failure.pod.as_str(), failure.exit_code), ("c", Some(137)));
        assert_eq!(failure.message.len(), MAX_FAILURE_MESSAGE);
        assert!(last_run_oom_killed(&status));
        let d = status.delivered.clone().expect("delivered");
        // 0.1 cores, then 0.09 weighted 1/5: 0.098 of the 0.1-core limit.
        assert_eq!(
            (d.runs, d.unit.as_str(), d.requested),
            (2, "cores", Some(0.1))
        );
        assert!((d.value - 0.098).abs() < 1e-9, "{d:?}");
        assert!((d.ratio.unwrap_or_default() - 0.98).abs() < 1e-9, "{d:?}");

        // A later completion ends the OOM episode.
        let ok3 = run(
            StressKind::Cpu,
            "d",
            "Completed",
            40,
            Some(summary("cpu", 3.0, 0)),
        );
        fold(&mut status, &spec, StressKind::Cpu, &[&ok3]);
        assert!(!last_run_oom_killed(&status));
        assert_eq!(status.completed_runs, 3);
    }

    #[test]
    fn memory_is_measured_against_its_bytes() {
        let mut status = KindStatus::default();
        let ok = run(
            StressKind::Memory,
            "m",
            "Completed",
            1,
            Some(summary("memory", 0.1, 100 << 20)),
        );
        fold(&mut status, &spec(), StressKind::Memory, &[&ok]);
        let d = status.delivered.expect("delivered");
        assert_eq!((d.unit.as_str(), d.ratio), ("bytes", Some(1.0)));
    }

    #[test]
    fn failure_reasons_are_bounded() {
        let mut status = KindStatus::default();
        let runs: Vec<EndedRun> = (0..20)
            .map(|i| {
                run(
                    StressKind::Io,
                    &format!("p{i}"),
                    &format!("Reason{i}"),
                    i,
                    None,
                )
            })
            .collect();
        let refs: Vec<&EndedRun> = runs.iter().collect();
        fold(&mut status, &spec(), StressKind::Io, &refs);
        assert_eq!(status.failed_runs.len(), MAX_FAILURE_REASONS);
        assert_eq!(status.failed_runs.values().sum::<i64>(), 20);
        assert_eq!(status.failed_runs.get(OTHER_REASON), Some(&13));
        assert_eq!(status.last_failure.map(|f| f.pod), Some("p19".to_owned()));
    }
}
