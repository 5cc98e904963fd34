//! One reconcile as a pipeline: observe (the caches) → plan (pure, with the backoff upkeep around
//! it) → act (the executor) → status. Also the records a Workload leaves behind, dropped with it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use stressmix_api::workload::{LABEL_WORKLOAD, Workload};
use thiserror::Error;
use tracing::{debug, warn};

use crate::backoff::SlotBackoff;
use crate::desired::{desired_kinds, image, lifetime};
use crate::executor::{execute_creates, execute_deletes, publish, write_status};
use crate::inflight::InFlight;
use crate::metrics::Metrics;
use crate::observed::observe as observe_pod;
use crate::planner::{self, Create, DeleteReason, KindDesire, ObservedPod, Plan, PlanInput};
use crate::podspec::PodBuildError;
use crate::ready::ReadyGate;
use crate::runs::EndedRun;
use crate::slim::SlimPod;
use crate::status;
use crate::written::WrittenStatuses;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "stressmix-operator";
/// A pod still terminating this long after its deletion timestamp is reported as stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);
/// Least time between two status writes of one Workload that only move pod counts and conditions:
/// while pods come up, every pod event would otherwise write one, and those writes cost the API
/// server more than the pods themselves (docs/benchmarks.md).
pub const STATUS_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// Shared state of all reconciles of one controller.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Cache of the operator's pods (label-selected, slim).
    pub pods: Store<SlimPod>,
    /// Opens once the pod cache holds its first full list.
    pub pods_ready: ReadyGate,
    /// Pods created and not yet seen in the cache.
    pub in_flight: Arc<InFlight>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event publisher.
    pub recorder: Recorder,
    /// Image for Workloads that name none.
    pub default_image: String,
    /// Failure backoff per slot (shared by all controllers; records are per Workload).
    pub backoff: Arc<Mutex<SlotBackoff>>,
    /// The last status written per Workload (the cache may lag behind it).
    pub written: Arc<WrittenStatuses>,
}

impl Context {
    /// Drops what the operator remembers of a deleted Workload (backoff, creates in flight).
    pub fn forget_workload(&self, namespace: &str, name: &str) {
        self.lock_backoff().forget_workload(namespace, name);
        self.in_flight.forget_workload(namespace, name);
        self.written.forget_workload(namespace, name);
        self.count_records();
    }

    /// Keeps only the records of Workloads `(namespace, name)` for which `keep` holds: after a
    /// relist, Workloads deleted while the watch was down arrive as no event.
    pub fn retain_workloads(&self, keep: impl Fn(&str, &str) -> bool) {
        self.lock_backoff().retain_workloads(&keep);
        self.in_flight.retain_workloads(&keep);
        self.written.retain_workloads(&keep);
        self.count_records();
    }

    /// Publishes how many records of each kind the operator keeps (a leak shows as growth).
    pub fn count_records(&self) {
        let backoff = self.lock_backoff().len();
        self.metrics
            .set_records(backoff, self.in_flight.len(), self.written.len());
    }

    fn lock_backoff(&self) -> std::sync::MutexGuard<'_, SlotBackoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The API call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCall {
    /// Creating a pod.
    CreatePod,
    /// Deleting a pod.
    DeletePod,
    /// Writing the Workload's status.
    WriteStatus,
}

impl ApiCall {
    /// The `error` label of the reconcile-error metric.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::CreatePod => "create_pod",
            Self::DeletePod => "delete_pod",
            Self::WriteStatus => "write_status",
        }
    }
}

impl std::fmt::Display for ApiCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::CreatePod => "creating pod",
            Self::DeletePod => "deleting pod",
            Self::WriteStatus => "writing status of",
        })
    }
}

/// Why a reconcile failed; the controller retries it.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// The Workload lacks metadata the API always sets.
    #[error("Workload {0} has no {1}")]
    Metadata(String, &'static str),
    /// The pod cache's writer is gone (the watch stream ended).
    #[error("the pod cache is closed")]
    CacheClosed,
    /// A pod could not be built from the spec.
    #[error("building pods of {workload}: {source}")]
    Build {
        /// namespace/name of the Workload.
        workload: String,
        /// Cause.
        source: PodBuildError,
    },
    /// An API call failed.
    #[error("{call} {target}: {source}")]
    Api {
        /// What was attempted.
        call: ApiCall,
        /// On what.
        target: String,
        /// Cause.
        source: kube::Error,
    },
}

/// Every `error` label of the reconcile-error metric.
pub const ERROR_LABELS: [&str; 6] = [
    "metadata",
    "cache_closed",
    "invalid_spec",
    "create_pod",
    "delete_pod",
    "write_status",
];

impl ReconcileError {
    /// The `error` label of the reconcile-error metric: one of [`ERROR_LABELS`].
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Metadata(..) => "metadata",
            Self::CacheClosed => "cache_closed",
            Self::Build { .. } => "invalid_spec",
            Self::Api { call, .. } => call.as_label(),
        }
    }
}

/// Reconciles one Workload; the controller calls this on every change of it or its pods.
pub async fn reconcile(wl: Arc<Workload>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_workload(&wl, &ctx).await;
    ctx.count_records();
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// What the controller does after a failed reconcile.
pub fn error_policy(wl: Arc<Workload>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_error(err.metric_label());
    warn!(workload = %wl.name_any(), namespace = ?wl.namespace(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_workload(wl: &Workload, ctx: &Context) -> Result<Action, ReconcileError> {
    if wl.meta().deletion_timestamp.is_some() {
        // The garbage collector removes the pods through their owner references.
        ctx.forget_workload(&wl.namespace().unwrap_or_default(), &wl.name_any());
        return Ok(Action::await_change());
    }
    let seen = observe(wl, ctx).await?;
    let decided = plan(&seen, ctx);
    let (ended, acted) = act(ctx, wl, &seen, &decided).await;
    let held = update_status(ctx, wl, &seen, &decided.plan, &ended).await?;
    acted?;
    let requeue = match (decided.plan.requeue_after, held) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// What one reconcile starts from: the Workload's pods in the cache (and how the finished ones'
/// runs ended), its creates in flight, and what its spec asks for.
struct Observation {
    namespace: String,
    name: String,
    uid: String,
    pods: Vec<ObservedPod>,
    /// The runs of the pods that ended (phase Succeeded or Failed), by pod name.
    ended: HashMap<String, EndedRun>,
    in_flight: Vec<Create>,
    image: String,
    desired: Vec<KindDesire>,
    lifetime: Duration,
    now: SystemTime,
}

async fn observe(wl: &Workload, ctx: &Context) -> Result<Observation, ReconcileError> {
    let name = wl.name_any();
    let namespace = wl
        .namespace()
        .ok_or_else(|| ReconcileError::Metadata(name.clone(), "namespace"))?;
    let uid = wl
        .uid()
        .ok_or_else(|| ReconcileError::Metadata(name.clone(), "uid"))?;
    // Not `Store::wait_until_ready`: it wakes only one of several waiters (ready.rs).
    ctx.pods_ready
        .wait()
        .await
        .map_err(|_| ReconcileError::CacheClosed)?;
    let owned = ctx.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(namespace.as_str())
            && p.labels().get(LABEL_WORKLOAD) == Some(&name)
            && p.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
    });
    let pods: Vec<ObservedPod> = owned.iter().map(|p| observe_pod(&name, p)).collect();
    let ended = owned
        .iter()
        .zip(&pods)
        .filter_map(|(slim, seen)| EndedRun::of(seen.kind?, slim))
        .map(|run| (run.pod.clone(), run))
        .collect();
    let cached: HashSet<&str> = pods.iter().map(|p| p.name.as_str()).collect();
    let in_flight = ctx
        .in_flight
        .pending(&namespace, &name, |pod| cached.contains(pod));
    let image = image(wl, &ctx.default_image);
    let desired = desired_kinds(wl, &image);
    Ok(Observation {
        namespace,
        name,
        uid,
        pods,
        ended,
        in_flight,
        image,
        desired,
        lifetime: lifetime(wl),
        now: SystemTime::now(),
    })
}

/// The plan and the backoff upkeep around it.
struct Decision {
    plan: Plan,
    /// Failed pods the plan deletes, with their slots' next try, for the event.
    failing: Vec<String>,
}

fn plan(seen: &Observation, ctx: &Context) -> Decision {
    let mut backoff = ctx.lock_backoff();
    let not_before = backoff.observe(&seen.namespace, &seen.name, &seen.pods);
    let plan = planner::plan(&PlanInput {
        workload: &seen.name,
        desired: &seen.desired,
        lifetime: seen.lifetime,
        pods: &seen.pods,
        now: seen.now,
        backoff: &not_before,
        in_flight: &seen.in_flight,
        stuck_after: STUCK_AFTER,
    });
    let failing = backoff.record_failures(&seen.namespace, &seen.name, &plan.deletes, seen.now);
    if !plan.deletes.is_empty() || !plan.creates.is_empty() {
        debug!(workload = %seen.name, namespace = %seen.namespace, deletes = plan.deletes.len(), creates = plan.creates.len(), "plan");
    }
    Decision { plan, failing }
}

/// Deletes, then creates; both run whatever the other's outcome, and the first error is returned
/// with the runs whose finished pods this round deleted (each counted once: a delete the API server
/// accepted happens once per pod).
async fn act<'a>(
    ctx: &Context,
    wl: &Workload,
    seen: &'a Observation,
    decided: &Decision,
) -> (Vec<&'a EndedRun>, Result<(), ReconcileError>) {
    let deleted = execute_deletes(ctx, wl, &decided.plan, &decided.failing).await;
    let created = execute_creates(ctx, wl, &decided.plan, &seen.image, &seen.desired).await;
    let ended: Vec<&EndedRun> = decided
        .plan
        .deletes
        .iter()
        .filter(|d| matches!(d.reason, DeleteReason::Finished | DeleteReason::Failed))
        .filter(|d| deleted.pods.contains(&d.name))
        .filter_map(|d| seen.ended.get(&d.name))
        .collect();
    let mut oom_killed: Vec<String> = ended
        .iter()
        .filter(|r| r.oom_killed())
        .map(|r| format!("{} ({})", r.pod, r.kind))
        .collect();
    if !oom_killed.is_empty() {
        oom_killed.sort();
        warn!(workload = %seen.name, namespace = %seen.namespace, pods = ?oom_killed, "runs OOM-killed");
        let note = format!(
            "runs killed by the OOM killer (the memory limit is too low for the load): {}",
            oom_killed.join(", ")
        );
        publish(ctx, wl, EventType::Warning, "OOMKilled", "Replace", note).await;
    }
    (ended, deleted.result.and(created))
}

/// Writes the status computed from what was observed, planned and ended, only when it changed. The
/// previous status is the one this process last wrote when it has one: the cached Workload may not
/// show it yet, and run counters folded into an older one would lose runs.
///
/// A change of pod counts or conditions alone waits until [`STATUS_WRITE_INTERVAL`] has passed since
/// the last write; the returned time is when to reconcile again to write it. Ended runs and a new
/// generation are written at once: the runs' pods are already deleted, so a held status would be
/// the only record of them.
async fn update_status(
    ctx: &Context,
    wl: &Workload,
    seen: &Observation,
    plan: &Plan,
    ended: &[&EndedRun],
) -> Result<Option<Duration>, ReconcileError> {
    let previous = ctx
        .written
        .get(&seen.namespace, &seen.name, &seen.uid)
        .or_else(|| wl.status.clone());
    let new_status = status::compute(
        &wl.spec,
        wl.meta().generation,
        &seen.pods,
        plan,
        ended,
        previous.as_ref(),
        Time(Timestamp::now()),
    );
    if previous.as_ref() == Some(&new_status) {
        return Ok(None);
    }
    let new_generation =
        previous.as_ref().and_then(|p| p.observed_generation) != new_status.observed_generation;
    if ended.is_empty() && !new_generation {
        let hold = ctx.written.hold_for(
            &seen.namespace,
            &seen.name,
            &seen.uid,
            STATUS_WRITE_INTERVAL,
            Instant::now(),
        );
        if hold.is_some() {
            return Ok(hold);
        }
    }
    write_status(ctx, &seen.namespace, &seen.name, &new_status).await?;
    ctx.written.record(
        &seen.namespace,
        &seen.name,
        &seen.uid,
        new_status,
        Instant::now(),
    );
    Ok(None)
}
