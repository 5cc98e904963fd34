//! From API pods to what the planner reads, and the pruning that keeps the pod cache small.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use kube::ResourceExt;
use stressmix_api::workload::{LABEL_KIND, LABEL_TEMPLATE_HASH, StressKind};

use crate::planner::{ObservedPod, Phase, parse_slot};

/// Strips a watched pod down to the fields [`observe`] reads, before it enters the reflector.
///
/// A full pod costs ~22 KB in the cache; metadata without managedFields and a status without
/// container details is a few KB, which keeps 10,000 pods well inside the operator's memory budget.
pub fn prune(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.finalizers = None;
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    pod.spec = Some(PodSpec {
        node_name,
        ..PodSpec::default()
    });
    if let Some(status) = pod.status.take() {
        pod.status = Some(PodStatus {
            phase: status.phase,
            conditions: status.conditions.map(|conditions| {
                conditions
                    .into_iter()
                    .filter(|c| c.type_ == "Ready" || c.type_ == "PodScheduled")
                    .map(|mut c| {
                        c.message = None;
                        c
                    })
                    .collect()
            }),
            reason: status.reason,
            ..PodStatus::default()
        });
    }
}

/// What the planner needs to know about `pod` of `workload`.
pub fn observe(workload: &str, pod: &Pod) -> ObservedPod {
    let name = pod.name_any();
    let kind = pod
        .labels()
        .get(LABEL_KIND)
        .and_then(|k| StressKind::from_name(k));
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => Phase::Running,
        Some("Succeeded") => Phase::Succeeded,
        Some("Failed") => Phase::Failed,
        Some("Unknown") => Phase::Unknown,
        _ => Phase::Pending,
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let scheduled = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    ObservedPod {
        slot: kind.and_then(|k| parse_slot(workload, k, &name)),
        name,
        uid: pod.uid().unwrap_or_default(),
        kind,
        template_hash: pod.labels().get(LABEL_TEMPLATE_HASH).cloned(),
        phase,
        scheduled,
        ready,
        created: pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| SystemTime::from(t.0)),
        deleting: pod
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| SystemTime::from(t.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("valid pod")
    }

    #[test]
    fn reads_slot_phase_readiness_and_times() {
        let p = pod(serde_json::json!({
            "metadata": {
                "name": "lab-cpu-3", "uid": "u1",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"stressmix.dev/kind": "cpu", "stressmix.dev/template-hash": "abc"}
            },
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }));
        let o = observe("lab", &p);
        assert_eq!(o.kind, Some(StressKind::Cpu));
        assert_eq!(o.slot, Some(3));
        assert_eq!(o.phase, Phase::Running);
        assert!(o.ready && o.scheduled && o.is_live());
        assert_eq!(o.template_hash.as_deref(), Some("abc"));
        assert!(o.created.is_some() && o.deleting.is_none());
    }

    #[test]
    fn a_pod_without_node_or_status_is_unscheduled_pending() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "lab-io-0", "labels": {"stressmix.dev/kind": "io"},
                         "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": []}
        }));
        let o = observe("lab", &p);
        assert_eq!(o.phase, Phase::Pending);
        assert!(!o.scheduled && !o.ready && !o.is_live());
        assert!(o.deleting.is_some());
    }

    #[test]
    fn pruning_keeps_what_observe_reads_and_drops_the_rest() {
        let mut p = pod(serde_json::json!({
            "metadata": {
                "name": "lab-cpu-0", "uid": "u", "labels": {"stressmix.dev/kind": "cpu"},
                "annotations": {"big": "x"},
                "managedFields": [{"manager": "kubectl", "operation": "Update"}]
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "stress", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True", "message": "m"},
                                      {"type": "ContainersReady", "status": "True"}],
                       "containerStatuses": [{"name": "stress", "image": "i", "imageID": "", "ready": true, "restartCount": 0}]}
        }));
        let before = observe("lab", &p);
        prune(&mut p);
        assert_eq!(observe("lab", &p), before);
        assert!(p.metadata.managed_fields.is_none() && p.metadata.annotations.is_none());
        let spec = p.spec.as_ref().expect("spec kept");
        assert!(spec.containers.is_empty());
        let status = p.status.as_ref().expect("status kept");
        assert!(status.container_statuses.is_none() && status.pod_ip.is_none());
        assert_eq!(status.conditions.as_ref().map(Vec::len), Some(1));
    }
}
