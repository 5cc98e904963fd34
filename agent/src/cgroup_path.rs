//! Who owns a cgroup, read from its path alone.
//!
//! The kubelet names cgroups in one of two ways, and a kind node adds the host's view of the node
//! container in front of them:
//! - systemd driver: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice/
//!   cri-containerd-<64 hex>.scope` (kind: `/system.slice/docker-<node id>.scope/kubelet.slice/
//!   kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/...`); guaranteed pods sit directly in the
//!   kubepods slice (`kubepods-pod<uid>.slice`).
//! - cgroupfs driver: `/kubepods/[burstable|besteffort/]pod<uid>/<64 hex>`.
//!
//! The parser looks for the pod component anywhere in the path, so any prefix (a kind node, a nested
//! runtime) is accepted; everything that has no pod component is "system".

use std::fmt;

/// The kubelet's quality-of-service class, as encoded in the cgroup hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The spelling Kubernetes uses in `status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    fn from_cgroup_word(word: &str) -> Option<Self> {
        match word {
            "burstable" => Some(QosClass::Burstable),
            "besteffort" => Some(QosClass::BestEffort),
            _ => None,
        }
    }
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cgroup that belongs to a pod: the pod cgroup itself or one of its containers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodCgroup {
    /// The pod UID in its canonical dashed form (`0d1c...-...`).
    pub pod_uid: String,
    pub qos: QosClass,
    /// The 64-hex container id when the cgroup is (or is below) a container's cgroup;
    /// `None` for the pod-level cgroup.
    pub container_id: Option<String>,
}

/// The owner of a cgroup as far as its path tells.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CgroupOwner {
    Pod(PodCgroup),
    System,
}

/// Parse a cgroup path (as `cgroup_path()` or `/proc/<pid>/cgroup` prints it) into its owner.
pub fn parse_cgroup_path(path: &str) -> CgroupOwner {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, component) in components.iter().enumerate() {
        let parent = i.checked_sub(1).and_then(|p| components.get(p)).copied();
        let Some((pod_uid, qos)) = pod_component(component, parent) else {
            continue;
        };
        let container_id = components.get(i + 1).and_then(|c| container_component(c));
        return CgroupOwner::Pod(PodCgroup {
            pod_uid,
            qos,
            container_id,
        });
    }
    CgroupOwner::System
}

/// Recognise a pod cgroup component in either driver's spelling.
fn pod_component(component: &str, parent: Option<&str>) -> Option<(String, QosClass)> {
    if let Some(slice) = component.strip_suffix(".slice") {
        // systemd: `[kubelet-]kubepods[-<qos>]-pod<uid_with_underscores>`
        let (prefix, escaped_uid) = slice.rsplit_once("-pod")?;
        let uid = escaped_uid.replace('_', "-");
        if !is_pod_uid(&uid) {
            return None;
        }
        let kubepods_at = prefix.find("kubepods")?;
        let after = &prefix[kubepods_at + "kubepods".len()..];
        let qos = match after.strip_prefix('-') {
            Some(word) => QosClass::from_cgroup_word(word)?,
            None if after.is_empty() => QosClass::Guaranteed,
            None => return None,
        };
        return Some((uid, qos));
    }
    // cgroupfs: `pod<uid>` below `kubepods`, `kubepods/burstable` or `kubepods/besteffort`.
    let uid = component.strip_prefix("pod")?;
    if !is_pod_uid(uid) {
        return None;
    }
    let qos = match parent {
        Some("kubepods") => QosClass::Guaranteed,
        Some(word) => QosClass::from_cgroup_word(word)?,
        None => return None,
    };
    Some((uid.to_owned(), qos))
}

/// The container id in a container cgroup component: `cri-containerd-<id>.scope`, `docker-<id>.scope`,
/// `crio-<id>.scope` (systemd) or a bare `<id>` (cgroupfs).
fn container_component(component: &str) -> Option<String> {
    let id = match component.strip_suffix(".scope") {
        Some(scope) => scope.rsplit_once('-').map_or(scope, |(_, id)| id),
        None => component,
    };
    is_container_id(id).then(|| id.to_owned())
}

/// A container id as CRI runtimes print it: 64 lowercase hex digits.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A pod UID: an RFC 4122 UUID in its 8-4-4-4-12 form.
fn is_pod_uid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Strip the runtime's prefix from a container id as the Kubernetes API reports it
/// (`containerd://<id>`, `docker://<id>`, `cri-o://<id>`).
pub fn strip_runtime_prefix(container_id: &str) -> &str {
    container_id
        .split_once("://")
        .map_or(container_id, |(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0d1c5c3e-8f2a-4b6e-9a7d-1234567890ab";
    const UID_ESC: &str = "0d1c5c3e_8f2a_4b6e_9a7d_1234567890ab";
    const CID: &str = "3f4e2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";

    fn pod(qos: QosClass, container: bool) -> CgroupOwner {
        CgroupOwner::Pod(PodCgroup {
            pod_uid: UID.to_owned(),
            qos,
            container_id: container.then(|| CID.to_owned()),
        })
    }

    #[test]
    fn systemd_driver_all_qos_classes() {
        let burstable = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESC}.slice/cri-containerd-{CID}.scope"
        );
        assert_eq!(
            parse_cgroup_path(&burstable),
            pod(QosClass::Burstable, true)
        );
        let besteffort = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_ESC}.slice/docker-{CID}.scope"
        );
        assert_eq!(
            parse_cgroup_path(&besteffort),
            pod(QosClass::BestEffort, true)
        );
        let guaranteed = format!("/kubepods.slice/kubepods-pod{UID_ESC}.slice/crio-{CID}.scope");
        assert_eq!(
            parse_cgroup_path(&guaranteed),
            pod(QosClass::Guaranteed, true)
        );
    }

    #[test]
    fn kind_node_seen_from_host() {
        let path = format!(
            "/system.slice/docker-5a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_ESC}.slice/cri-containerd-{CID}.scope"
        );
        assert_eq!(parse_cgroup_path(&path), pod(QosClass::BestEffort, true));
        let guaranteed = format!(
            "/system.slice/docker-abc.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_ESC}.slice"
        );
        assert_eq!(
            parse_cgroup_path(&guaranteed),
            pod(QosClass::Guaranteed, false)
        );
    }

    #[test]
    fn cgroupfs_driver_all_qos_classes() {
        assert_eq!(
            parse_cgroup_path(&format!("/kubepods/burstable/pod{UID}/{CID}")),
            pod(QosClass::Burstable, true)
        );
        assert_eq!(
            parse_cgroup_path(&format!("/kubepods/besteffort/pod{UID}/{CID}")),
            pod(QosClass::BestEffort, true)
        );
        assert_eq!(
            parse_cgroup_path(&format!("/kubepods/pod{UID}/{CID}")),
            pod(QosClass::Guaranteed, true)
        );
        assert_eq!(
            parse_cgroup_path(&format!("/kubepods/pod{UID}")),
            pod(QosClass::Guaranteed, false)
        );
        // Below a kind node's prefix too.
        assert_eq!(
            parse_cgroup_path(&format!(
                "/system.slice/docker-x.scope/kubepods/burstable/pod{UID}/{CID}"
            )),
            pod(QosClass::Burstable, true)
        );
    }

    #[test]
    fn processes_nested_below_a_container_keep_its_id() {
        let path = format!("/kubepods/burstable/pod{UID}/{CID}/inner");
        assert_eq!(parse_cgroup_path(&path), pod(QosClass::Burstable, true));
    }

    #[test]
    fn non_container_children_of_a_pod_have_no_container_id() {
        let path = format!("/kubepods/burstable/pod{UID}/not-a-container");
        assert_eq!(parse_cgroup_path(&path), pod(QosClass::Burstable, false));
    }

    #[test]
    fn everything_else_is_system() {
        for path in [
            "/",
            "",
            "/system.slice/containerd.service",
            "/kubepods.slice",
            "/kubepods.slice/kubepods-burstable.slice",
            "/kubepods/burstable",
            "/user.slice/user-0.slice/session-1.scope",
            // malformed uids and misplaced pod components
            "/kubepods/burstable/podnot-a-uid/x",
            "/kubepods.slice/kubepods-burstable-pod1234.slice",
            &format!("/somewhere/pod{UID}"),
            &format!("/kubepods.slice/kubepods-weird-pod{UID_ESC}.slice"),
            &format!("/pod{UID}"),
        ] {
            assert_eq!(parse_cgroup_path(path), CgroupOwner::System, "{path}");
        }
    }

    #[test]
    fn runtime_prefixes_are_stripped() {
        assert_eq!(strip_runtime_prefix(&format!("containerd://{CID}")), CID);
        assert_eq!(strip_runtime_prefix(&format!("cri-o://{CID}")), CID);
        assert_eq!(strip_runtime_prefix(CID), CID);
    }
}
