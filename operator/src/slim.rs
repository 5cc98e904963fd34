//! `SlimPod`: the pod as the operator's cache holds it. It is the Pod API resource deserialized into
//! only the fields the planner reads, so a watched pod never exists in full inside the operator: a
//! `k8s_openapi` Pod is 2.4 KB of struct before any string, a `SlimPod` a fraction of that.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use serde::{Deserialize, Serialize};

/// A pod with metadata, `spec.nodeName`, `status.phase` and the Ready condition only.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct SlimPod {
    /// Standard metadata (managedFields and annotations are dropped by [`prune`]).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The scheduling part of the spec.
    #[serde(default)]
    pub spec: SlimSpec,
    /// Phase and readiness.
    #[serde(default)]
    pub status: SlimStatus,
}

/// `spec` reduced to the node binding.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimSpec {
    /// The node the pod is bound to; absent while unscheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

/// `status` reduced to phase, readiness and how a finished pod ended.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct SlimStatus {
    /// Pending, Running, Succeeded, Failed or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Whether the Ready condition is True (computed while deserializing, see [`SlimStatus`]).
    #[serde(
        default,
        rename = "conditions",
        deserialize_with = "ready_from_conditions",
        skip_serializing
    )]
    pub ready: bool,
    /// Why the pod failed when no container did (Evicted, DeadlineExceeded...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The pod's message that goes with `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How the stress container ended (its first container that has), read from
    /// `containerStatuses`; `None` while it runs.
    #[serde(
        default,
        rename = "containerStatuses",
        deserialize_with = "first_terminated",
        skip_serializing
    )]
    pub terminated: Option<Terminated>,
}

/// `state.terminated` of a container: how a run ended.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    /// The process's exit code.
    #[serde(default)]
    pub exit_code: i32,
    /// Completed, Error, OOMKilled, ContainerCannotRun...
    #[serde(default)]
    pub reason: Option<String>,
    /// The termination message (the run's summary, or the tail of its log on an error).
    #[serde(default)]
    pub message: Option<String>,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<Time>,
}

#[derive(Deserialize)]
struct SlimContainerStatus {
    #[serde(default)]
    state: Option<SlimContainerState>,
}

#[derive(Deserialize)]
struct SlimContainerState {
    #[serde(default)]
    terminated: Option<Terminated>,
}

fn first_terminated<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Terminated>, D::Error> {
    let statuses: Option<Vec<SlimContainerStatus>> = Option::deserialize(d)?;
    Ok(statuses
        .unwrap_or_default()
        .into_iter()
        .find_map(|s| s.state.and_then(|state| state.terminated)))
}

#[derive(Deserialize)]
struct SlimCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

fn ready_from_conditions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let conditions: Option<Vec<SlimCondition>> = Option::deserialize(d)?;
    Ok(conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Resource for SlimPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn api_version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Drops the metadata the planner never reads before a pod enters the cache.
pub fn prune(pod: &mut SlimPod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.finalizers = None;
    meta.generate_name = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_full_pod_document_into_the_slim_fields() {
        let pod: SlimPod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "lab-cpu-0", "namespace": "ns", "uid": "u",
                         "labels": {"stressmix.dev/kind": "cpu"},
                         "annotations": {"a": "b"},
                         "managedFields": [{"manager": "m", "operation": "Update"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "stress", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "conditions": [{"type": "PodScheduled", "status": "True"},
                                      {"type": "Ready", "status": "True", "message": "m"}]}
        }))
        .expect("parses");
        assert_eq!(pod.spec.node_name.as_deref(), Some("n1"));
        assert_eq!(pod.status.phase.as_deref(), Some("Running"));
        assert!(pod.status.ready);
        let mut pruned = pod.clone();
        prune(&mut pruned);
        assert!(pruned.metadata.managed_fields.is_none() && pruned.metadata.annotations.is_none());
        assert_eq!(pruned.metadata.labels, pod.metadata.labels);
    }

    #[test]
    fn a_finished_pod_keeps_how_its_container_ended() {
        let pod: SlimPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "lab-memory-0"},
            "status": {"phase": "Failed", "reason": "Evicted", "message": "low on memory",
                       "containerStatuses": [{"name": "stress", "image": "i", "imageID": "",
                         "ready": false, "restartCount": 0,
                         "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                           "message": "tail", "finishedAt": "2026-12-05T10:00:00Z"}}}]}
        }))
        .expect("parses");
        let t = pod.status.terminated.expect("terminated");
        assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
        assert_eq!(t.message.as_deref(), Some("tail"));
        assert!(t.finished_at.is_some());
        assert_eq!(pod.status.reason.as_deref(), Some("Evicted"));
        let running: SlimPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running", "containerStatuses": [{"name": "stress",
              "state": {"running": {"startedAt": "2026-12-05T10:00:00Z"}}}]}
        }))
        .expect("parses");
        assert!(running.status.terminated.is_none());
    }

    #[test]
    fn a_new_pod_without_status_or_node_is_unscheduled_and_not_ready() {
        let pod: SlimPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"containers": []}
        }))
        .expect("parses");
        assert!(pod.spec.node_name.is_none());
        assert!(pod.status.phase.is_none() && !pod.status.ready);
        let not_ready: SlimPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}], "phase": "Running"}
        }))
        .expect("parses");
        assert!(!not_ready.status.ready);
    }

    #[test]
    fn the_slim_pod_is_much_smaller_than_a_full_pod() {
        assert!(
            std::mem::size_of::<SlimPod>() * 4
                < std::mem::size_of::<k8s_openapi::api::core::v1::Pod>(),
            "slim {} vs full {}",
            std::mem::size_of::<SlimPod>(),
            std::mem::size_of::<k8s_openapi::api::core::v1::Pod>()
        );
    }
}
