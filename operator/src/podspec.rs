//! The stress pod built for one slot of a Workload.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use stressmix_api::workload::quantity::{QuantityError, parse_whole};
use stressmix_api::workload::{
    LABEL_KIND, LABEL_MANAGED_BY, LABEL_SLOT, LABEL_TEMPLATE_HASH, LABEL_WORKLOAD, MANAGED_BY,
    MixEntry, StressKind, Workload,
};
use thiserror::Error;

/// Path of the stress program inside the image.
pub const STRESS_BINARY: &str = "/usr/local/bin/stressmix-stress";
/// Where the scratch emptyDir is mounted (the stress program's default `--dir`).
pub const SCRATCH_DIR: &str = "/scratch";
/// Where the stress program writes its run summary: the container's termination message, which
/// the operator reads back from the pod's status before it deletes a finished pod.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// The non-root user and group the stress container runs as (the image's user).
pub const RUN_AS: i64 = 65532;

/// Why a pod could not be built from the spec.
#[derive(Debug, Error)]
pub enum PodBuildError {
    /// The Workload has no namespace (it is a namespaced resource, so the API never sends this).
    #[error("Workload {0} has no namespace")]
    NoNamespace(String),
    /// The Workload has no UID yet, so no owner reference can point at it.
    #[error("Workload {0} has no uid")]
    NoUid(String),
    /// `bytes` is not a quantity (CEL rejects this at admission; an older CRD might not).
    #[error("spec.mix[kind={kind}].bytes: {source}")]
    Bytes {
        /// The kind whose bytes are wrong.
        kind: StressKind,
        /// The parse error.
        source: QuantityError,
    },
}

/// The labels of the pod in `slot` of `workload`/`kind`.
pub fn labels(workload: &str, kind: StressKind, slot: u32, hash: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_WORKLOAD.to_owned(), workload.to_owned()),
        (LABEL_KIND.to_owned(), kind.as_str().to_owned()),
        (LABEL_SLOT.to_owned(), slot.to_string()),
        (LABEL_TEMPLATE_HASH.to_owned(), hash.to_owned()),
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
    ])
}

/// The command-line arguments of `stressmix-stress` for `entry`.
pub fn stress_args(entry: &MixEntry, duration_seconds: i64) -> Result<Vec<String>, PodBuildError> {
    let mut args = vec![
        entry.kind.as_str().to_owned(),
        "--duration".to_owned(),
        duration_seconds.max(0).to_string(),
        "--workers".to_owned(),
        entry.workers.max(1).to_string(),
    ];
    if entry.kind == StressKind::Cpu {
        args.push("--load".to_owned());
        args.push(entry.load.unwrap_or(100).clamp(1, 100).to_string());
    }
    if matches!(entry.kind, StressKind::Memory | StressKind::Disk)
        && let Some(bytes) = &entry.bytes
    {
        let value = parse_whole(&bytes.0).map_err(|source| PodBuildError::Bytes {
            kind: entry.kind,
            source,
        })?;
        args.push("--bytes".to_owned());
        args.push(value.to_string());
    }
    if entry.kind.uses_scratch() {
        args.push("--dir".to_owned());
        args.push(SCRATCH_DIR.to_owned());
    }
    args.push("--summary-file".to_owned());
    args.push(TERMINATION_LOG.to_owned());
    Ok(args)
}

/// The pod for `slot_name` running `entry` of `wl`.
pub fn build_pod(
    wl: &Workload,
    entry: &MixEntry,
    slot: u32,
    pod_name: &str,
    hash: &str,
    image: &str,
) -> Result<Pod, PodBuildError> {
    let name = wl.name_any();
    let namespace = wl
        .namespace()
        .ok_or_else(|| PodBuildError::NoNamespace(name.clone()))?;
    let mut owner = wl
        .controller_owner_ref(&())
        .ok_or_else(|| PodBuildError::NoUid(name.clone()))?;
    // Deleting the Workload in the foreground waits for its pods.
    owner.block_owner_deletion = Some(true);
    let template = &wl.spec.template;

    let mut limits = BTreeMap::new();
    if let Some(l) = &template.resources.limits {
        if let Some(cpu) = &l.cpu {
            limits.insert("cpu".to_owned(), cpu.clone());
        }
        if let Some(memory) = &l.memory {
            limits.insert("memory".to_owned(), memory.clone());
        }
    }

    let uses_scratch = entry.kind.uses_scratch();
    let container = Container {
        name: "stress".to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec![STRESS_BINARY.to_owned()]),
        args: Some(stress_args(entry, template.duration_seconds)?),
        resources: Some(ResourceRequirements {
            // Requests equal limits: Guaranteed QoS, so the scheduler reserves what stress will take.
            requests: Some(limits.clone()),
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: uses_scratch.then(|| {
            vec![VolumeMount {
                name: "scratch".to_owned(),
                mount_path: SCRATCH_DIR.to_owned(),
                ..VolumeMount::default()
            }]
        }),
        termination_message_path: Some(TERMINATION_LOG.to_owned()),
        // A run killed before it wrote its summary (OOMKilled) still says something: its log's tail.
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    };

    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name.to_owned()),
            namespace: Some(namespace),
            labels: Some(labels(&name, entry.kind, slot, hash)),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            // A finished run is replaced by a new pod (new slot lifetime), never restarted in place.
            restart_policy: Some("Never".to_owned()),
            // The stress program stops within 1 s of SIGTERM.
            termination_grace_period_seconds: Some(5),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            node_selector: (!template.node_selector.is_empty())
                .then(|| template.node_selector.clone()),
            tolerations: (!template.tolerations.is_empty()).then(|| template.tolerations.clone()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            volumes: uses_scratch.then(|| {
                vec![Volume {
                    name: "scratch".to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        size_limit: Some(Quantity(template.scratch_size_limit.0.clone())),
                        ..EmptyDirVolumeSource::default()
                    }),
                    ..Volume::default()
                }]
            }),
            ..PodSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        let mut wl: Workload = serde_json::from_value(serde_json::json!({
            "apiVersion": "stressmix.dev/v1alpha1", "kind": "Workload",
            "metadata": {"name": "lab", "namespace": "stress", "uid": "wl-uid"},
            "spec": {"mix": [
                {"kind": "cpu", "replicas": 1, "workers": 2, "load": 40},
                {"kind": "disk", "replicas": 1, "bytes": "1Mi"}
            ]}
        }))
        .expect("valid workload");
        wl.spec
            .template
            .node_selector
            .insert("zone".into(), "a".into());
        wl
    }

    #[test]
    fn cpu_pod_is_bounded_restricted_and_owned() {
        let wl = workload();
        let pod = build_pod(&wl, &wl.spec.mix[0], 0, "lab-cpu-0", "h1", "img:1").expect("pod");
        let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.uid, "wl-uid");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        let labels = pod.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[LABEL_WORKLOAD], "lab");
        assert_eq!(labels[LABEL_KIND], "cpu");
        assert_eq!(labels[LABEL_SLOT], "0");
        assert_eq!(labels[LABEL_TEMPLATE_HASH], "h1");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);

        let spec = pod.spec.as_ref().expect("spec");
        let c = &spec.containers[0];
        assert_eq!(c.command.as_deref(), Some(&[STRESS_BINARY.to_owned()][..]));
        assert_eq!(
            c.args.as_ref().expect("args").join(" "),
            "cpu --duration 30 --workers 2 --load 40 --summary-file /dev/termination-log"
        );
        assert_eq!(c.termination_message_path.as_deref(), Some(TERMINATION_LOG));
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        let resources = c.resources.as_ref().expect("resources");
        assert_eq!(resources.requests, resources.limits);
        let limits = resources.limits.as_ref().expect("limits");
        assert_eq!(limits["cpu"].0, "100m");
        assert_eq!(limits["memory"].0, "128Mi");
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(65532));
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
        assert!(spec.volumes.is_none(), "cpu needs no scratch");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            spec.node_selector.as_ref().map(|n| n["zone"].as_str()),
            Some("a")
        );
    }

    #[test]
    fn disk_pod_writes_into_a_size_limited_empty_dir() {
        let wl = workload();
        let pod = build_pod(&wl, &wl.spec.mix[1], 0, "lab-disk-0", "h2", "img:1").expect("pod");
        let spec = pod.spec.as_ref().expect("spec");
        let c = &spec.containers[0];
        assert_eq!(
            c.args.as_ref().expect("args").join(" "),
            "disk --duration 30 --workers 1 --bytes 1048576 --dir /scratch --summary-file /dev/termination-log"
        );
        assert_eq!(
            c.volume_mounts.as_ref().expect("mounts")[0].mount_path,
            "/scratch"
        );
        let volume = &spec.volumes.as_ref().expect("volumes")[0];
        let empty_dir = volume.empty_dir.as_ref().expect("emptyDir");
        assert_eq!(
            empty_dir.size_limit.as_ref().map(|q| q.0.as_str()),
            Some("1Gi")
        );
    }

    #[test]
    fn a_workload_without_uid_cannot_own_pods() {
        let mut wl = workload();
        wl.metadata.uid = None;
        assert!(matches!(
            build_pod(&wl, &wl.spec.mix[0], 0, "lab-cpu-0", "h", "i"),
            Err(PodBuildError::NoUid(_))
        ));
    }
}
