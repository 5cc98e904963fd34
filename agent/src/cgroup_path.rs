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
    /// The pod's own cgroup (`pod<uid>` with nothing below it). Its counters are the sum of its
    /// children's (the containers and the sandbox), so it is no container's reading.
    pub pod_level: bool,
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
        let below = components.get(i + 1);
        return CgroupOwner::Pod(PodCgroup {
            pod_uid,
            qos,
            container_id: below.and_then(|c| container_component(c)),
            pod_level: below.is_none(),
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
            pod_level: false,
        })
    }

    fn pod_level(qos: QosClass) -> CgroupOwner {
        CgroupOwner::Pod(PodCgroup {
            pod_uid: UID.to_owned(),
            qos,
            container_id: None,
            pod_level: true,
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
            pod_level(QosClass::Guaranteed)
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
            pod_level(QosClass::Guaranteed)
        );
        assert_eq!(
            parse_cgroup_path(&format!("/kubepods/besteffort/pod{UID}/")),
            pod_level(QosClass::BestEffort)
        );
        // Below a kind node's prefix too.
        assert_eq!(
            parse_cgroup_path(&format!(
                "/system.slice/docker-x.scope/kubepods/burstable/pod{UID}/{CID}"
            )),
            pod(QosClass::Burstable, true)
        );
    }

    /// Paths as the lab node (hack/lab: containerd 1.6 + runc, kubelet's cgroupfs driver, cgroup v2)
    /// showed them for two stress pods of examples/workload.yaml (Guaranteed: limits only), from the
    /// agent's readings in `make test-e2e`: a pod's own cgroup, its sandbox (pause) and a container,
    /// all below `/kubepods/pod<uid>`.
    #[test]
    fn lab_node_real_paths() {
        let pod_a = "e0fb2441-5f1b-454d-a1a5-1832f583e779";
        let pod_b = "4b3184f2-e2bb-4232-9961-4275d402966c";
        let sandbox_a = "4b209b3ca0168753f07466cd2c123b2caa2fb5f860ebe44e41d4c54bad698316";
        let container_b = "9fdba5224f74237fedd843bf2514a04d0d2ded64a8655a920bf68a6cde83c9b8";
        for (path, uid, id) in [
            (format!("/kubepods/pod{pod_a}"), pod_a, None),
            (
                format!("/kubepods/pod{pod_a}/{sandbox_a}"),
                pod_a,
                Some(sandbox_a),
            ),
            (
                format!("/kubepods/pod{pod_b}/{container_b}"),
                pod_b,
                Some(container_b),
            ),
        ] {
            let want = CgroupOwner::Pod(PodCgroup {
                pod_uid: uid.to_owned(),
                qos: QosClass::Guaranteed,
                container_id: id.map(str::to_owned),
                pod_level: id.is_none(),
            });
            assert_eq!(parse_cgroup_path(&path), want, "{path}");
        }
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

    /// Every path the real module printed in the qemu harness (kind-style systemd paths under a
    /// node's docker scope, and cgroupfs-driver paths).
    #[test]
    fn paths_from_the_real_module() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/tests/fixtures/kmod");
        let mut real = 0;
        for entry in std::fs::read_dir(&dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !name.contains("-real-") {
                continue;
            }
            real += 1;
            let doc: stressmix_api::kmod::Snapshot =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
                    .expect("parse");
            let mut containers = Vec::new();
            for cgroup in &doc.cgroups {
                let text = cgroup.path.to_string();
                match parse_cgroup_path(&text) {
                    CgroupOwner::Pod(p) if p.container_id.is_some() => containers.push(p),
                    CgroupOwner::Pod(p) => assert!(
                        text.ends_with(".slice") || text.contains(&format!("pod{}", p.pod_uid)),
                        "{text}"
                    ),
                    CgroupOwner::System => assert!(
                        !text.ends_with(".scope") || !text.contains("kubepods"),
                        "{name}: {text}"
                    ),
                }
            }
            let summary: Vec<(String, QosClass, String)> = containers
                .iter()
                .map(|p| {
                    (
                        p.pod_uid.clone(),
                        p.qos,
                        p.container_id.clone().unwrap_or_default()[56..].to_owned(),
                    )
                })
                .collect();
            assert_eq!(
                summary,
                vec![
                    (
                        "0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5".to_owned(),
                        QosClass::Burstable,
                        "00000001".to_owned()
                    ),
                    (
                        "0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5".to_owned(),
                        QosClass::Burstable,
                        "00000002".to_owned()
                    ),
                    (
                        "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901".to_owned(),
                        QosClass::Burstable,
                        "00000003".to_owned()
                    ),
                    // The kmod suite's schema 2 checks: the hog throttled at 10 % and the
                    // OOM-killed container.
                    (
                        "3d4e5f60-7182-93a4-b5c6-d7e8f90a1b2c".to_owned(),
                        QosClass::Burstable,
                        "00000005".to_owned()
                    ),
                    (
                        "3d4e5f60-7182-93a4-b5c6-d7e8f90a1b2c".to_owned(),
                        QosClass::Burstable,
                        "00000006".to_owned()
                    ),
                    (
                        "2c3d4e5f-6071-8293-a4b5-c6d7e8f90a1b".to_owned(),
                        QosClass::BestEffort,
                        "00000004".to_owned()
                    ),
                ],
                "{name}"
            );
        }
        assert!(real >= 2, "no real-module fixtures in {}", dir.display());
    }

    #[test]
    fn runtime_prefixes_are_stripped() {
        assert_eq!(strip_runtime_prefix(&format!("containerd://{CID}")), CID);
        assert_eq!(strip_runtime_prefix(&format!("cri-o://{CID}")), CID);
        assert_eq!(strip_runtime_prefix(CID), CID);
    }
}
