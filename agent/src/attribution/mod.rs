//! Who a cgroup belongs to: the pod index (filled from the Kubernetes API when enabled) joined with
//! what the cgroup path says (pod UID, container id, QoS class).

#[cfg(feature = "kubernetes")]
pub mod kube_pods;

use std::collections::HashMap;

use stressmix_api::readings::{ContainerReading, SYSTEM_KIND};

use crate::cgroup_path::{CgroupOwner, parse_cgroup_path};

pub use stressmix_api::labels::{LABEL_KIND, LABEL_SLOT, LABEL_WORKLOAD};

/// What attribution needs to know about one pod on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub workload: Option<String>,
    pub kind: Option<String>,
    /// The pod's slot in its Workload and kind (label `stressmix.dev/slot`).
    pub slot: Option<u32>,
    /// Container id (64 hex, runtime prefix stripped) → container name.
    pub containers: HashMap<String, String>,
    /// Every container of the pod's spec is running under the id above (or has finished for good):
    /// the runtime starts no container the agent does not know, so another container cgroup below
    /// the pod is its sandbox.
    pub containers_settled: bool,
}

/// What attribution decided for one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// A container, or a cgroup outside the pods: ship it.
    Ship,
    /// The pod's own cgroup: not shipped, because its counters are the sum of its containers' and
    /// its sandbox's, so shipping it would count the pod twice in every sum.
    PodCgroup,
    /// The pod's sandbox (the pause container): not shipped. It is no container of the pod's spec
    /// (the kubelet's summary API and metrics-server leave it out too) and it only holds the pod's
    /// namespaces; its few pages still count in the node's memory.
    Sandbox,
}

impl Attribution {
    /// The `reason` label of a reading the agent does not ship; None for one it ships.
    pub fn not_shipped_reason(self) -> Option<&'static str> {
        match self {
            Attribution::Ship => None,
            Attribution::PodCgroup => Some("pod_cgroup"),
            Attribution::Sandbox => Some("sandbox"),
        }
    }
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

    /// Fill the attribution fields of a reading from its cgroup path and this index, and say
    /// whether it is shipped.
    ///
    /// A cgroup of a known stress pod gets its namespace, pod, container, Workload and kind. A pod
    /// that is not a stress pod (no kind label), or a pod the index does not know (attribution from
    /// paths only), keeps its UID and container id but is of kind "system", as is every cgroup
    /// outside the pods. A container id the pod does not list yet ships without a container name
    /// until its status reaches the agent, unless every container of the pod is settled, which makes
    /// it the sandbox.
    pub fn attribute(&self, reading: &mut ContainerReading) -> Attribution {
        reading.kind = Some(SYSTEM_KIND.to_owned());
        let CgroupOwner::Pod(owner) = parse_cgroup_path(&reading.cgroup_path) else {
            return Attribution::Ship;
        };
        let mut attribution = if owner.pod_level {
            Attribution::PodCgroup
        } else {
            Attribution::Ship
        };
        if let Some(pod) = self.pods.get(&owner.pod_uid) {
            reading.namespace = Some(pod.namespace.clone());
            reading.pod = Some(pod.name.clone());
            reading.workload = pod.workload.clone();
            if let Some(kind) = &pod.kind {
                reading.kind = Some(kind.clone());
            }
            reading.slot = pod.slot;
            if let Some(id) = &owner.container_id {
                reading.container = pod.containers.get(id).cloned();
                if reading.container.is_none() && pod.containers_settled {
                    attribution = Attribution::Sandbox;
                }
            }
        }
        reading.pod_uid = Some(owner.pod_uid);
        reading.container_id = owner.container_id;
        attribution
    }
}

/// Pods stay known for a while after they leave the API server's view: the operator deletes a
/// finished pod within seconds (an OOM-killed one too), before the agent's next collection reads
/// the kill in its cgroup's ancestors. Without them the kill would be of kind "system".
#[derive(Debug, Default)]
pub struct RecentPods {
    /// The latest index, plus the pods that left it in the last [`Self::KEEP`] collections.
    known: PodIndex,
    /// By UID, the pods of `known` that left the index: collections since they left.
    departed: HashMap<String, u32>,
}

impl RecentPods {
    /// Collections a departed pod stays known (5 minutes at the default 5 s interval).
    pub const KEEP: u32 = 60;

    pub fn new() -> Self {
        Self::default()
    }

    /// `current` plus the pods that left it in the last [`Self::KEEP`] collections. Takes the
    /// index by value: pods move in and out, nothing is copied but a departed pod's UID.
    pub fn merged(&mut self, current: PodIndex) -> &PodIndex {
        let previous = std::mem::replace(&mut self.known, current);
        for (uid, pod) in previous.pods {
            if self.known.pods.contains_key(&uid) {
                self.departed.remove(&uid);
                continue;
            }
            let age = self.departed.entry(uid.clone()).or_insert(0);
            *age += 1;
            if *age <= Self::KEEP {
                self.known.pods.insert(uid, pod);
            } else {
                self.departed.remove(&uid);
            }
        }
        &self.known
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
                slot: Some(3),
                containers: [(CID.to_owned(), "stress".to_owned())].into(),
                containers_settled: true,
            },
        );
        index
    }

    #[test]
    fn stress_container_gets_everything() {
        let mut r = reading(&format!("/kubepods/burstable/pod{UID}/{CID}"));
        assert_eq!(index().attribute(&mut r), Attribution::Ship);
        assert_eq!(r.namespace.as_deref(), Some("stress"));
        assert_eq!(r.pod.as_deref(), Some("lab-cpu-0"));
        assert_eq!(r.container.as_deref(), Some("stress"));
        assert_eq!(r.workload.as_deref(), Some("lab"));
        assert_eq!(r.kind.as_deref(), Some("cpu"));
        assert_eq!(r.slot, Some(3));
        assert_eq!(r.pod_uid.as_deref(), Some(UID));
        assert_eq!(r.container_id.as_deref(), Some(CID));
    }

    #[test]
    fn the_sandbox_of_a_settled_pod_is_not_shipped() {
        let sandbox = "b".repeat(64);
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{sandbox}.scope",
            UID.replace('-', "_")
        );
        let mut r = reading(&path);
        assert_eq!(index().attribute(&mut r), Attribution::Sandbox);
        assert_eq!(r.pod.as_deref(), Some("lab-cpu-0"));
        assert_eq!(r.container, None);
        assert_eq!(r.container_id.as_deref(), Some(sandbox.as_str()));
    }

    /// A container started before its status reached the agent is shipped, named by the pod only,
    /// rather than taken for the sandbox and lost.
    #[test]
    fn an_unlisted_container_of_a_starting_pod_is_shipped_without_a_name() {
        let mut starting = index();
        if let Some(pod) = starting.pods.get_mut(UID) {
            pod.containers.clear();
            pod.containers_settled = false;
        }
        let mut r = reading(&format!("/kubepods/pod{UID}/{}", "c".repeat(64)));
        assert_eq!(starting.attribute(&mut r), Attribution::Ship);
        assert_eq!(r.pod.as_deref(), Some("lab-cpu-0"));
        assert_eq!(r.kind.as_deref(), Some("cpu"));
        assert_eq!(r.container, None);
    }

    #[test]
    fn pod_cgroups_are_not_shipped_known_or_not() {
        for uid in [UID, "11111111-2222-3333-4444-555555555555"] {
            for path in [
                format!("/kubepods/pod{uid}"),
                format!("/kubepods/burstable/pod{uid}"),
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
                    uid.replace('-', "_")
                ),
            ] {
                let mut r = reading(&path);
                assert_eq!(index().attribute(&mut r), Attribution::PodCgroup, "{path}");
                assert_eq!(r.pod_uid.as_deref(), Some(uid));
            }
        }
        // A child of the pod that is not a container cgroup is no aggregate: it ships.
        let mut r = reading(&format!("/kubepods/pod{UID}/not-a-container"));
        assert_eq!(index().attribute(&mut r), Attribution::Ship);
    }

    #[test]
    fn unknown_pods_and_host_cgroups_are_system() {
        let other = "11111111-2222-3333-4444-555555555555";
        let mut r = reading(&format!("/kubepods/besteffort/pod{other}/{CID}"));
        assert_eq!(index().attribute(&mut r), Attribution::Ship);
        assert_eq!(r.kind.as_deref(), Some(SYSTEM_KIND));
        assert_eq!(
            r.pod_uid.as_deref(),
            Some(other),
            "path-only attribution keeps the uid"
        );
        assert_eq!(r.container_id.as_deref(), Some(CID));
        assert_eq!(r.pod, None);

        let mut r = reading("/system.slice/containerd.service");
        assert_eq!(index().attribute(&mut r), Attribution::Ship);
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
        assert_eq!(index.attribute(&mut r), Attribution::Ship);
        assert_eq!(r.kind.as_deref(), Some(SYSTEM_KIND));
        assert_eq!(r.pod.as_deref(), Some("coredns-1"));
        assert_eq!(r.workload, None);
    }

    #[test]
    fn departed_pods_stay_known_for_a_while() {
        let path = format!("/kubepods/pod{UID}/{CID}");
        let mut recent = RecentPods::new();
        let mut r = reading(&path);
        recent.merged(index()).attribute(&mut r);
        assert_eq!(r.workload.as_deref(), Some("lab"));
        // The pod is deleted: still attributed for KEEP collections, then no more.
        for _ in 0..RecentPods::KEEP {
            let mut r = reading(&path);
            recent.merged(PodIndex::new()).attribute(&mut r);
            assert_eq!(r.pod.as_deref(), Some("lab-cpu-0"));
            assert_eq!(r.slot, Some(3));
        }
        let mut r = reading(&path);
        recent.merged(PodIndex::new()).attribute(&mut r);
        assert_eq!(r.pod, None);
        assert_eq!(r.kind.as_deref(), Some(SYSTEM_KIND));
    }
}
