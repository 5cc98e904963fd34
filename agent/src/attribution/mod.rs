//! Who a cgroup belongs to: the pod index (filled from the Kubernetes API when enabled) joined with
//! what the cgroup path says (pod UID, container id, QoS class).

#[cfg(feature = "kubernetes")]
pub mod kube_pods;

use std::collections::HashMap;

use stressmix_api::readings::{ContainerReading, SYSTEM_KIND};

use crate::cgroup_path::{CgroupOwner, parse_cgroup_path};

/// Label naming the Workload that owns a stress pod.
pub const WORKLOAD_LABEL: &str = "stressmix.dev/workload";
/// Label naming the stress kind of a stress pod.
pub const KIND_LABEL: &str = "stressmix.dev/kind";

/// What attribution needs to know about one pod on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub workload: Option<String>,
    pub kind: Option<String>,
    /// Container id (64 hex, runtime prefix stripped) → container name.
    pub containers: HashMap<String, String>,
}

/// The pods on this node, by UID.
#[derive(Debug, Clone, Default)]
pub struct PodIndex {
    pods: HashMap<String, PodInfo>,
}

impl PodIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, uid: String, pod: PodInfo) {
        self.pods.insert(uid, pod);
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Fill the attribution fields of a reading from its cgroup path and this index.
    ///
    /// A cgroup of a known stress pod gets its namespace, pod, container, Workload and kind. A pod
    /// that is not a stress pod (no kind label), or a pod the index does not know (attribution from
    /// paths only), keeps its UID and container id but is of kind "system", as is every cgroup
    /// outside the pods.
    pub fn attribute(&self, reading: &mut ContainerReading) {
        reading.kind = Some(SYSTEM_KIND.to_owned());
        let CgroupOwner::Pod(owner) = parse_cgroup_path(&reading.cgroup_path) else {
            return;
        };
        if let Some(pod) = self.pods.get(&owner.pod_uid) {
            reading.namespace = Some(pod.namespace.clone());
            reading.pod = Some(pod.name.clone());
            reading.workload = pod.workload.clone();
            if let Some(kind) = &pod.kind {
                reading.kind = Some(kind.clone());
            }
            reading.container = owner
                .container_id
                .as_ref()
                .and_then(|id| pod.containers.get(id))
                .cloned();
        }
        reading.pod_uid = Some(owner.pod_uid);
        reading.container_id = owner.container_id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c2a9e-3b7d-4c1e-9a2b-0d5e8f7a6b4c";
    const CID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn reading(path: &str) -> ContainerReading {
        ContainerReading {
            cgroup_id: Some(1),
            cgroup_path: path.to_owned(),
            ..ContainerReading::default()
        }
    }

    fn index() -> PodIndex {
        let mut index = PodIndex::new();
        index.insert(
            UID.into(),
            PodInfo {
                namespace: "stress".into(),
                name: "lab-cpu-0".into(),
                workload: Some("lab".into()),
                kind: Some("cpu".into()),
                containers: [(CID.to_owned(), "stress".to_owned())].into(),
            },
        );
        index
    }

    #[test]
    fn stress_container_gets_everything() {
        let mut r = reading(&format!("/kubepods/burstable/pod{UID}/{CID}"));
        index().attribute(&mut r);
        assert_eq!(r.namespace.as_deref(), Some("stress"));
        assert_eq!(r.pod.as_deref(), Some("lab-cpu-0"));
        assert_eq!(r.container.as_deref(), Some("stress"));
        assert_eq!(r.workload.as_deref(), Some("lab"));
        assert_eq!(r.kind.as_deref(), Some("cpu"));
        assert_eq!(r.pod_uid.as_deref(), Some(UID));
        assert_eq!(r.container_id.as_deref(), Some(CID));
    }

    #[test]
    fn sandbox_container_is_the_pod_without_a_container_name() {
        let sandbox = "b".repeat(64);
        let mut r = reading(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{sandbox}.scope",
            UID.replace('-', "_")
        ));
        index().attribute(&mut r);
        assert_eq!(r.pod.as_deref(), Some("lab-cpu-0"));
        assert_eq!(r.container, None);
        assert_eq!(r.container_id.as_deref(), Some(sandbox.as_str()));
    }

    #[test]
    fn unknown_pods_and_host_cgroups_are_system() {
        let other = "11111111-2222-3333-4444-555555555555";
        let mut r = reading(&format!("/kubepods/besteffort/pod{other}/{CID}"));
        index().attribute(&mut r);
        assert_eq!(r.kind.as_deref(), Some(SYSTEM_KIND));
        assert_eq!(
            r.pod_uid.as_deref(),
            Some(other),
            "path-only attribution keeps the uid"
        );
        assert_eq!(r.container_id.as_deref(), Some(CID));
        assert_eq!(r.pod, None);

        let mut r = reading("/system.slice/containerd.service");
        index().attribute(&mut r);
        assert_eq!(r.kind.as_deref(), Some(SYSTEM_KIND));
        assert_eq!(r.pod_uid, None);
    }

    #[test]
    fn pods_without_stress_labels_are_system_but_named() {
        let mut index = PodIndex::new();
        index.insert(
            UID.into(),
            PodInfo {
                namespace: "kube-system".into(),
                name: "coredns-1".into(),
                ..PodInfo::default()
            },
        );
        let mut r = reading(&format!("/kubepods/pod{UID}/{CID}"));
        index.attribute(&mut r);
        assert_eq!(r.kind.as_deref(), Some(SYSTEM_KIND));
        assert_eq!(r.pod.as_deref(), Some("coredns-1"));
        assert_eq!(r.workload, None);
    }
}
