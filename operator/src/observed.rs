//! From cached pods to what the planner reads.

use std::time::SystemTime;

use kube::ResourceExt;
use stressmix_api::workload::{LABEL_KIND, LABEL_TEMPLATE_HASH, StressKind};

use crate::planner::{ObservedPod, Phase, parse_slot};
use crate::slim::SlimPod;

/// What the planner needs to know about `pod` of `workload`.
pub fn observe(workload: &str, pod: &SlimPod) -> ObservedPod {
    let name = pod.name_any();
    let kind = pod
        .labels()
        .get(LABEL_KIND)
        .and_then(|k| StressKind::from_name(k));
    let phase = match pod.status.phase.as_deref() {
        Some("Running") => Phase::Running,
        Some("Succeeded") => Phase::Succeeded,
        Some("Failed") => Phase::Failed,
        Some("Unknown") => Phase::Unknown,
        _ => Phase::Pending,
    };
    ObservedPod {
        slot: kind.and_then(|k| parse_slot(workload, k, &name)),
        name,
        uid: pod.uid().unwrap_or_default(),
        kind,
        template_hash: pod.labels().get(LABEL_TEMPLATE_HASH).cloned(),
        phase,
        scheduled: pod.spec.node_name.is_some(),
        ready: pod.status.ready,
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

    fn pod(json: serde_json::Value) -> SlimPod {
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
    fn a_pod_of_another_workload_prefix_has_no_slot() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "other-cpu-0", "labels": {"stressmix.dev/kind": "cpu"}}
        }));
        assert_eq!(observe("lab", &p).slot, None);
        let p = pod(serde_json::json!({
            "metadata": {"name": "lab-gpu-0", "labels": {"stressmix.dev/kind": "gpu"}}
        }));
        assert_eq!(observe("lab", &p).kind, None);
    }
}
