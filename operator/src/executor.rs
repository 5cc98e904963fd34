//! Acting on a plan: deletes (with a UID precondition) and creates fanned out with bounded
//! concurrency, one event per outcome, and the status write. An API failure comes back as the first
//! error after every call ran; an event that cannot be written never fails the reconcile.

use std::collections::BTreeMap;
use std::future::Future;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use stressmix_api::workload::{StressKind, Workload, WorkloadStatus};
use tracing::{debug, info, warn};

use crate::metrics::{DeleteLabels, KindLabels};
use crate::planner::{Create, Delete, KindDesire, Plan};
use crate::podspec::build_pod;
use crate::reconcile::{ApiCall, Context, FIELD_MANAGER, ReconcileError};
use crate::text::{name_list, truncate};

/// Parallel API calls per reconcile.
pub const API_CONCURRENCY: usize = 32;
/// Pod names an event lists before it says how many more there are.
const SHOWN_IN_EVENTS: usize = 20;
/// Longest event note (the API refuses notes over 1 KiB).
const MAX_NOTE: usize = 1000;

/// Runs `call` on every input, at most [`API_CONCURRENCY`] at once; results in completion order.
/// Inputs are owned: the futures run inside the controller's spawned task and must not borrow.
async fn fan_out<T, R, Fut>(inputs: Vec<T>, call: impl Fn(T) -> Fut) -> Vec<R>
where
    Fut: Future<Output = R>,
{
    futures::stream::iter(inputs)
        .map(call)
        .buffer_unordered(API_CONCURRENCY)
        .collect()
        .await
}

/// What a round of deletes did.
#[derive(Debug)]
pub struct Deleted {
    /// Pods this round deleted: the API server accepted the delete (not "gone already").
    pub pods: Vec<String>,
    /// The first failed delete.
    pub result: Result<(), ReconcileError>,
}

/// Deletes the plan's pods. `failing` names the failed ones whose slots now back off.
pub async fn execute_deletes(
    ctx: &Context,
    wl: &Workload,
    plan: &Plan,
    failing: &[String],
) -> Deleted {
    if plan.deletes.is_empty() {
        return Deleted {
            pods: Vec::new(),
            result: Ok(()),
        };
    }
    let namespace = wl.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let inputs = plan
        .deletes
        .iter()
        .map(|d| (d.clone(), api.clone()))
        .collect();
    let results = fan_out(inputs, |(d, api): (Delete, Api<Pod>)| async move {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(d.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let result = match api.delete(&d.name, &params).await {
            Ok(_) => Ok(true),
            // Gone already, or a newer pod took the name: nothing to delete.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
        (d, result)
    })
    .await;

    let mut deleted = Vec::new();
    let mut replaced = Vec::new();
    let mut removed = Vec::new();
    let mut first_error = None;
    for (d, result) in results {
        match result {
            Ok(accepted) => {
                if accepted {
                    deleted.push(d.name.clone());
                }
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
                first_error.get_or_insert(ReconcileError::Api {
                    call: ApiCall::DeletePod,
                    target: format!("{namespace}/{}", d.name),
                    source,
                });
            }
        }
    }
    replaced.sort();
    removed.sort();
    if !replaced.is_empty() {
        info!(workload = %wl.name_any(), %namespace, pods = ?replaced, "replacing pods");
        let note = format!("replacing {} pods: {}", replaced.len(), names(&replaced));
        publish(ctx, wl, EventType::Normal, "Replaced", "Replace", note).await;
    }
    if !removed.is_empty() {
        info!(workload = %wl.name_any(), %namespace, pods = ?removed, "deleted surplus pods");
        let note = format!("deleted {} pods: {}", removed.len(), names(&removed));
        publish(ctx, wl, EventType::Normal, "Deleted", "Delete", note).await;
    }
    if !failing.is_empty() {
        warn!(workload = %wl.name_any(), %namespace, pods = ?failing, "pods failed");
        let note = format!("pods failed, their slots back off: {}", names(failing));
        publish(ctx, wl, EventType::Warning, "PodFailing", "Replace", note).await;
    }
    Deleted {
        pods: deleted,
        result: first_error.map_or(Ok(()), Err),
    }
}

/// Creates the plan's pods from `desired`'s template hashes and `image`. Each create is recorded in
/// flight before its request, so the watch cannot report the pod before the record.
pub async fn execute_creates(
    ctx: &Context,
    wl: &Workload,
    plan: &Plan,
    image: &str,
    desired: &[KindDesire],
) -> Result<(), ReconcileError> {
    if plan.creates.is_empty() {
        return Ok(());
    }
    let namespace = wl.namespace().unwrap_or_default();
    let workload = wl.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let hashes: BTreeMap<StressKind, &str> = desired
        .iter()
        .map(|d| (d.kind, d.template_hash.as_str()))
        .collect();
    let mut inputs = Vec::with_capacity(plan.creates.len());
    for c in &plan.creates {
        let (Some(entry), Some(hash)) = (wl.spec.entry(c.kind), hashes.get(&c.kind)) else {
            continue;
        };
        match build_pod(wl, entry, c.slot, &c.name, hash, image) {
            Ok(pod) => inputs.push((c.clone(), pod)),
            Err(source) => {
                let note = source.to_string();
                publish(ctx, wl, EventType::Warning, "InvalidSpec", "Create", note).await;
                return Err(ReconcileError::Build {
                    workload: format!("{namespace}/{workload}"),
                    source,
                });
            }
        }
    }
    let results = fan_out(inputs, |(c, pod): (Create, Pod)| {
        let (api, in_flight) = (api.clone(), ctx.in_flight.clone());
        let (namespace, workload) = (namespace.clone(), workload.clone());
        async move {
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
                created.push(c.name);
            }
            Ok(false) => debug!(pod = %c.name, "pod exists already"),
            Err(source) => {
                first_error.get_or_insert(ReconcileError::Api {
                    call: ApiCall::CreatePod,
                    target: format!("{namespace}/{}", c.name),
                    source,
                });
            }
        }
    }
    if !created.is_empty() {
        created.sort();
        info!(workload = %workload, %namespace, pods = ?created, "created pods");
        let note = format!("created {} pods: {}", created.len(), names(&created));
        publish(ctx, wl, EventType::Normal, "Created", "Create", note).await;
    }
    if let Some(err) = &first_error {
        let note = err.to_string();
        publish(ctx, wl, EventType::Warning, "CreateFailed", "Create", note).await;
    }
    first_error.map_or(Ok(()), Err)
}

/// Writes the whole status by server-side apply (kinds it no longer reports vanish).
pub async fn write_status(
    ctx: &Context,
    namespace: &str,
    name: &str,
    status: &WorkloadStatus,
) -> Result<(), ReconcileError> {
    let api: Api<Workload> = Api::namespaced(ctx.client.clone(), namespace);
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
        call: ApiCall::WriteStatus,
        target: format!("{namespace}/{name}"),
        source,
    })?;
    Ok(())
}

/// Publishes an event on the Workload; a failure is logged, never fails the reconcile.
pub async fn publish(
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
        note: Some(truncate(note, MAX_NOTE)),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &wl.object_ref(&())).await {
        warn!(error = %err, reason, "cannot publish event");
    }
}

fn names(items: &[String]) -> String {
    name_list(items, SHOWN_IN_EVENTS)
}
