//! Watch the pods of this node (field selector `spec.nodeName`) into a reflector store, without
//! managedFields (they are most of a pod's size and attribution never reads them).

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::{LABEL_KIND, LABEL_SLOT, LABEL_WORKLOAD, PodIndex, PodInfo};
use crate::cgroup_path::strip_runtime_prefix;

pub struct PodWatch {
    store: Store<Pod>,
}

impl PodWatch {
    /// Connect with the in-cluster config or the kubeconfig and start watching this node's pods.
    pub async fn start(node_name: &str) -> Result<Self, kube::Error> {
        let client = Client::try_default().await?;
        let api: Api<Pod> = Api::all(client);
        let (store, writer) = reflector::store();
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
        let stream = watcher(api, config)
            .default_backoff()
            .modify(|pod: &mut Pod| {
                pod.managed_fields_mut().clear();
            })
            .reflect(writer)
            .applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    // The watcher retries by itself (default backoff); say why attribution may lag.
                    tracing::warn!(error = %e, "pod watch error; retrying");
                }
            }
        });
        Ok(PodWatch { store })
    }

    /// The current pods as an attribution index.
    pub fn index(&self) -> PodIndex {
        let mut index = PodIndex::new();
        for pod in self.store.state() {
            if let Some((uid, info)) = pod_info(&pod) {
                index.insert(uid, info);
            }
        }
        index
    }
}

/// The attribution facts of one pod; `None` for a pod without a UID (never from the API server).
pub fn pod_info(pod: &Pod) -> Option<(String, PodInfo)> {
    let uid = pod.metadata.uid.clone()?;
    let labels = pod.labels();
    let mut containers = std::collections::HashMap::new();
    if let Some(status) = &pod.status {
        let all = status
            .container_statuses
            .iter()
            .flatten()
            .chain(status.init_container_statuses.iter().flatten())
            .chain(status.ephemeral_container_statuses.iter().flatten());
        for c in all {
            if let Some(id) = &c.container_id {
                containers.insert(strip_runtime_prefix(id).to_owned(), c.name.clone());
            }
        }
    }
    Some((
        uid,
        PodInfo {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            workload: labels.get(LABEL_WORKLOAD).cloned(),
            kind: labels.get(LABEL_KIND).cloned(),
            slot: labels.get(LABEL_SLOT).and_then(|s| s.parse().ok()),
            containers,
            containers_settled: containers_settled(pod),
        },
    ))
}

/// Every container of the spec runs under the id its status gives, or has terminated in a pod that
/// never restarts it. Until then (starting, restarting, a status not yet written) the runtime may
/// hold a container the status does not list yet.
fn containers_settled(pod: &Pod) -> bool {
    let (Some(spec), Some(status)) = (&pod.spec, &pod.status) else {
        return false;
    };
    let never_restarts = spec.restart_policy.as_deref() == Some("Never");
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    spec.containers.iter().all(|container| {
        statuses
            .iter()
            .find(|s| s.name == container.name)
            .is_some_and(|s| {
                let state = s.state.as_ref();
                s.container_id.is_some()
                    && (state.is_some_and(|st| st.running.is_some())
                        || (never_restarts && state.is_some_and(|st| st.terminated.is_some())))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_info_reads_labels_and_container_ids() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "lab-memory-1",
                "namespace": "stress",
                "uid": "6f1c2a9e-3b7d-4c1e-9a2b-0d5e8f7a6b4c",
                "labels": {"stressmix.dev/workload": "lab", "stressmix.dev/kind": "memory", "stressmix.dev/slot": "1"}
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "stress"}]},
            "status": {
                "containerStatuses": [{
                    "name": "stress",
                    "containerID": format!("containerd://{}", "c".repeat(64)),
                    "image": "x", "imageID": "", "ready": true, "restartCount": 0
                }],
                "initContainerStatuses": [{
                    "name": "init",
                    "containerID": format!("cri-o://{}", "d".repeat(64)),
                    "image": "x", "imageID": "", "ready": false, "restartCount": 0
                }]
            }
        }))
        .expect("pod");
        let (uid, info) = pod_info(&pod).expect("has uid");
        assert_eq!(uid, "6f1c2a9e-3b7d-4c1e-9a2b-0d5e8f7a6b4c");
        assert_eq!(info.namespace, "stress");
        assert_eq!(info.name, "lab-memory-1");
        assert_eq!(info.workload.as_deref(), Some("lab"));
        assert_eq!(info.kind.as_deref(), Some("memory"));
        assert_eq!(info.slot, Some(1));
        assert_eq!(
            info.containers.get(&"c".repeat(64)).map(String::as_str),
            Some("stress")
        );
        assert_eq!(
            info.containers.get(&"d".repeat(64)).map(String::as_str),
            Some("init")
        );
        // No state in the status: the container may not run under that id yet.
        assert!(!info.containers_settled);
    }

    fn pod_with(restart_policy: &str, states: &[(&str, serde_json::Value)]) -> Pod {
        let containers: Vec<_> = states
            .iter()
            .map(|(name, _)| serde_json::json!({"name": name}))
            .collect();
        let statuses: Vec<_> = states
            .iter()
            .enumerate()
            .filter(|(_, (_, state))| !state.is_null())
            .map(|(i, (name, state))| {
                serde_json::json!({
                    "name": name,
                    "containerID": format!("containerd://{}", format!("{i:x}").repeat(64)),
                    "state": state,
                    "image": "x", "imageID": "", "ready": true, "restartCount": 0
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "stress", "uid": "6f1c2a9e-3b7d-4c1e-9a2b-0d5e8f7a6b4c"},
            "spec": {"restartPolicy": restart_policy, "containers": containers},
            "status": {"containerStatuses": statuses}
        }))
        .expect("pod")
    }

    fn settled(pod: &Pod) -> bool {
        pod_info(pod).expect("has uid").1.containers_settled
    }

    #[test]
    fn settled_when_every_container_runs_or_has_finished_for_good() {
        let running = serde_json::json!({"running": {"startedAt": "2026-12-05T00:00:00Z"}});
        let done = serde_json::json!({"terminated": {"exitCode": 0}});
        let waiting = serde_json::json!({"waiting": {"reason": "ContainerCreating"}});
        assert!(settled(&pod_with("Never", &[("stress", running.clone())])));
        assert!(settled(&pod_with(
            "Never",
            &[("a", running.clone()), ("b", done.clone())]
        )));
        // A terminated container of a pod that restarts it may be replaced by one not listed yet.
        assert!(!settled(&pod_with("Always", &[("stress", done)])));
        assert!(!settled(&pod_with("Never", &[("stress", waiting)])));
        // A container of the spec with no status at all.
        assert!(!settled(&pod_with(
            "Never",
            &[("a", running), ("b", serde_json::Value::Null)]
        )));
    }
}
