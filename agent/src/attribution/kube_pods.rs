//! Watch the pods of this node (field selector `spec.nodeName`) into a reflector store, without
//! managedFields (they are most of a pod's size and attribution never reads them).

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::{KIND_LABEL, PodIndex, PodInfo, WORKLOAD_LABEL};
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
            workload: labels.get(WORKLOAD_LABEL).cloned(),
            kind: labels.get(KIND_LABEL).cloned(),
            containers,
        },
    ))
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
                "labels": {"stressmix.dev/workload": "lab", "stressmix.dev/kind": "memory"}
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
        assert_eq!(
            info.containers.get(&"c".repeat(64)).map(String::as_str),
            Some("stress")
        );
        assert_eq!(
            info.containers.get(&"d".repeat(64)).map(String::as_str),
            Some("init")
        );
    }
}
