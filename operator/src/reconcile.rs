//! The executor: reads the caches, asks the planner, and carries out its plan against the API
//! (deletes with a UID precondition, creates, events, status).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use stressmix_api::workload::{LABEL_WORKLOAD, StressKind, Workload, WorkloadStatus};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::backoff::SlotBackoff;
use crate::hash::template_hash;
use crate::inflight::InFlight;
use crate::metrics::{DeleteLabels, KindLabels, Metrics};
use crate::observed::observe;
use crate::planner::{self, DeleteReason, KindDesire, Phase, Plan, PlanInput, slot_name};
use crate::podspec::{PodBuildError, build_pod};
use crate::ready::ReadyGate;
use crate::slim::SlimPod;
use crate::status;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "stressmix-operator";
/// A pod still terminating this long after its deletion timestamp is reported as stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);
/// Parallel API calls per reconcile.
const API_CONCURRENCY: usize = 32;

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
    /// Failure backoff per slot (shared by all Workloads; keys carry the namespace).
    pub backoff: Arc<Mutex<SlotBackoff>>,
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
    #[error("{action} {target}: {source}")]
    Api {
        /// What was attempted.
        action: &'static str,
        /// On what.
        target: String,
        /// Cause.
        source: kube::Error,
    },
}

/// Reconciles one Workload; the controller calls this on every change of it or its pods.
pub async fn reconcile(wl: Arc<Workload>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_workload(&wl, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// What the controller does after a failed reconcile.
pub fn error_policy(wl: Arc<Workload>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    warn!(workload = %wl.name_any(), namespace = ?wl.namespace(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_workload(wl: &Workload, ctx: &Context) -> Result<Action, ReconcileError> {
    let name = wl.name_any();
    if wl.meta().deletion_timestamp.is_some() {
        // The garbage collector removes the pods through their owner references.
        return Ok(Action::await_change());
    }
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

    let owned: Vec<Arc<SlimPod>> = ctx.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(namespace.as_str())
            && p.labels().get(LABEL_WORKLOAD) == Some(&name)
            && p.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
    });
    let observed: Vec<_> = owned.iter().map(|p| observe(&name, p)).collect();
    let cached: HashSet<&str> = observed.iter().map(|p| p.name.as_str()).collect();
    let in_flight = ctx
        .in_flight
        .pending(&namespace, &name, |pod| cached.contains(pod));

    let image = wl
        .spec
        .template
        .image
        .clone()
        .unwrap_or_else(|| ctx.default_image.clone());
    let desired: Vec<KindDesire> = wl
        .spec
        .mix
        .iter()
        .map(|entry| KindDesire {
            kind: entry.kind,
            replicas: u32::try_from(wl.spec.desired_replicas(entry.kind)).unwrap_or(0),
            template_hash: template_hash(entry, &wl.spec.template, &image),
        })
        .collect();

    let now = SystemTime::now();
    let backoff = {
        let mut slots = ctx.backoff.lock().unwrap_or_else(|e| e.into_inner());
        for pod in &observed {
            if pod.ready || pod.phase == Phase::Succeeded {
                slots.succeeded(&backoff_key(
                    &namespace, &name, pod.kind, pod.slot, &pod.name,
                ));
            }
        }
        slots.not_before(&namespace)
    };
    let lifetime =
        Duration::from_secs(u64::try_from(wl.spec.template.lifetime_seconds).unwrap_or(1));
    let plan = planner::plan(&PlanInput {
        workload: &name,
        desired: &desired,
        lifetime,
        pods: &observed,
        now,
        backoff: &backoff,
        in_flight: &in_flight,
        stuck_after: STUCK_AFTER,
    });
    if !plan.deletes.is_empty() || !plan.creates.is_empty() {
        debug!(workload = %name, %namespace, deletes = plan.deletes.len(), creates = plan.creates.len(), "plan");
    }

    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let delete_result = execute_deletes(ctx, wl, &namespace, &pods_api, &plan).await;
    let create_result =
        execute_creates(ctx, wl, &namespace, &pods_api, &plan, &image, &desired).await;

    let generation = wl.meta().generation;
    let new_status = status::compute(
        &wl.spec,
        generation,
        &observed,
        &plan,
        wl.status.as_ref(),
        Time(Timestamp::now()),
    );
    if wl.status.as_ref() != Some(&new_status) {
        write_status(ctx, &namespace, &name, &new_status).await?;
    }
    delete_result?;
    create_result?;

    Ok(plan
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

async fn execute_deletes(
    ctx: &Context,
    wl: &Workload,
    namespace: &str,
    pods_api: &Api<Pod>,
    plan: &Plan,
) -> Result<(), ReconcileError> {
    if plan.deletes.is_empty() {
        return Ok(());
    }
    let now = SystemTime::now();
    let mut failing = Vec::new();
    {
        let mut slots = ctx.backoff.lock().unwrap_or_else(|e| e.into_inner());
        for d in plan
            .deletes
            .iter()
            .filter(|d| d.reason == DeleteReason::Failed)
        {
            let key = backoff_key(namespace, &wl.name_any(), d.kind, d.slot, &d.name);
            let wait = slots.failed(&key, &d.uid, now);
            failing.push(format!("{} (next try in {}s)", d.name, wait.as_secs()));
        }
    }
    // Owned inputs: the futures run inside the controller's spawned task and must not borrow.
    let calls: Vec<(usize, String, String, Api<Pod>)> = plan
        .deletes
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d.name.clone(), d.uid.clone(), pods_api.clone()))
        .collect();
    let results: Vec<(usize, Result<(), kube::Error>)> = futures::stream::iter(calls)
        .map(|(i, name, uid, api)| async move {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let result = match api.delete(&name, &params).await {
                Ok(_) => Ok(()),
                // Gone already, or a newer pod took the name: nothing to delete.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                Err(e) => Err(e),
            };
            (i, result)
        })
        .buffer_unordered(API_CONCURRENCY)
        .collect()
        .await;

    let mut replaced = Vec::new();
    let mut removed = Vec::new();
    let mut first_error = None;
    for (i, result) in results {
        let d = &plan.deletes[i];
        match result {
            Ok(()) => {
                ctx.metrics
                    .pods_deleted
                    .get_or_create(&DeleteLabels {
                        kind: d.kind.map_or("unknown", StressKind::as_str).to_owned(),
                        reason: d.reason.as_str().to_owned(),
                    })
                    .inc();
                let entry = format!("{} ({})", d.name, d.reason.as_str());
                if d.reason.is_replacement() {
                    replaced.push(entry);
                } else {
                    removed.push(entry);
                }
            }
            Err(source) => {
                if first_error.is_none() {
                    first_error = Some(ReconcileError::Api {
                        action: "deleting pod",
                        target: format!("{namespace}/{}", d.name),
                        source,
                    });
                }
            }
        }
    }
    if !replaced.is_empty() {
        info!(workload = %wl.name_any(), %namespace, pods = ?replaced, "replacing pods");
        publish(
            ctx,
            wl,
            EventType::Normal,
            "Replaced",
            "Replace",
            format!("replacing {} pods: {}", replaced.len(), list(&replaced)),
        )
        .await;
    }
    if !removed.is_empty() {
        info!(workload = %wl.name_any(), %namespace, pods = ?removed, "deleted surplus pods");
        publish(
            ctx,
            wl,
            EventType::Normal,
            "Deleted",
            "Delete",
            format!("deleted {} pods: {}", removed.len(), list(&removed)),
        )
        .await;
    }
    if !failing.is_empty() {
        warn!(workload = %wl.name_any(), %namespace, pods = ?failing, "pods failed");
        publish(
            ctx,
            wl,
            EventType::Warning,
            "PodFailing",
            "Replace",
            format!("pods failed, their slots back off: {}", list(&failing)),
        )
        .await;
    }
    first_error.map_or(Ok(()), Err)
}

async fn execute_creates(
    ctx: &Context,
    wl: &Workload,
    namespace: &str,
    pods_api: &Api<Pod>,
    plan: &Plan,
    image: &str,
    desired: &[KindDesire],
) -> Result<(), ReconcileError> {
    if plan.creates.is_empty() {
        return Ok(());
    }
    let hashes: BTreeMap<StressKind, &str> = desired
        .iter()
        .map(|d| (d.kind, d.template_hash.as_str()))
        .collect();
    let mut pods = Vec::with_capacity(plan.creates.len());
    for c in &plan.creates {
        let (Some(entry), Some(hash)) = (wl.spec.entry(c.kind), hashes.get(&c.kind)) else {
            continue;
        };
        match build_pod(wl, entry, &c.name, hash, image) {
            Ok(pod) => pods.push((c.clone(), pod, pods_api.clone())),
            Err(source) => {
                publish(
                    ctx,
                    wl,
                    EventType::Warning,
                    "InvalidSpec",
                    "Create",
                    source.to_string(),
                )
                .await;
                return Err(ReconcileError::Build {
                    workload: format!("{namespace}/{}", wl.name_any()),
                    source,
                });
            }
        }
    }
    let workload = wl.name_any();
    let results: Vec<_> = futures::stream::iter(pods)
        .map(|(c, pod, api)| {
            let in_flight = ctx.in_flight.clone();
            let (namespace, workload) = (namespace.to_owned(), workload.clone());
            async move {
                // Recorded before the request, so the watch cannot report the pod before the record.
                in_flight.record(&namespace, &workload, &c);
                let result = match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => Ok(true),
                    // The cache had not seen this pod yet: the name proves it exists already.
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => {
                        in_flight.forget(&namespace, &workload, &c.name);
                        Err(e)
                    }
                };
                (c, result)
            }
        })
        .buffer_unordered(API_CONCURRENCY)
        .collect()
        .await;

    let mut created = Vec::new();
    let mut first_error = None;
    for (c, result) in results {
        match result {
            Ok(true) => {
                ctx.metrics
                    .pods_created
                    .get_or_create(&KindLabels {
                        kind: c.kind.as_str().to_owned(),
                    })
                    .inc();
                created.push(c.name.clone());
            }
            Ok(false) => debug!(pod = %c.name, "pod exists already"),
            Err(source) => {
                if first_error.is_none() {
                    first_error = Some(ReconcileError::Api {
                        action: "creating pod",
                        target: format!("{namespace}/{}", c.name),
                        source,
                    });
                }
            }
        }
    }
    if !created.is_empty() {
        created.sort();
        info!(workload = %wl.name_any(), %namespace, pods = ?created, "created pods");
        publish(
            ctx,
            wl,
            EventType::Normal,
            "Created",
            "Create",
            format!("created {} pods: {}", created.len(), list(&created)),
        )
        .await;
    }
    if let Some(err) = &first_error {
        publish(
            ctx,
            wl,
            EventType::Warning,
            "CreateFailed",
            "Create",
            err.to_string(),
        )
        .await;
    }
    first_error.map_or(Ok(()), Err)
}

async fn write_status(
    ctx: &Context,
    namespace: &str,
    name: &str,
    status: &WorkloadStatus,
) -> Result<(), ReconcileError> {
    let api: Api<Workload> = Api::namespaced(ctx.client.clone(), namespace);
    // Server-side apply: the operator owns the whole status, so kinds it no longer reports vanish.
    let body = serde_json::json!({
        "apiVersion": "stressmix.dev/v1alpha1",
        "kind": "Workload",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| ReconcileError::Api {
        action: "writing status of",
        target: format!("{namespace}/{name}"),
        source,
    })?;
    Ok(())
}

/// The failure-backoff key of a pod: its slot (both of a slot's names share one backoff).
fn backoff_key(
    namespace: &str,
    workload: &str,
    kind: Option<StressKind>,
    slot: Option<u32>,
    pod: &str,
) -> String {
    match (kind, slot) {
        (Some(kind), Some(slot)) => format!("{namespace}/{}", slot_name(workload, kind, slot)),
        _ => format!("{namespace}/{pod}"),
    }
}

/// Publishes an event on the Workload; failures are logged, never fail the reconcile.
async fn publish(
    ctx: &Context,
    wl: &Workload,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &wl.object_ref(&())).await {
        warn!(error = %err, reason, "cannot publish event");
    }
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}
