//! The agent's pod watch (`PodWatch`) against the real API server of the test control plane
//! (`hack/testenv`; `make test-k8s` starts it and runs this file). Pods are bound to the kwok node
//! (kwok makes them Running and finishes their deletion), each test in its own namespace. Every
//! assertion reads what the watch put into the index, polled until the API's state shows up.
//!
//! A missing control plane fails the tests with instructions, never a skip: this file only compiles
//! with the `cluster-tests` feature, which only the target that starts the control plane enables.
#![cfg(feature = "cluster-tests")]

use std::future::Future;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stressmix_agent::attribution::kube_pods::PodWatch;
use stressmix_agent::attribution::{LABEL_KIND, LABEL_WORKLOAD, PodIndex};
use stressmix_api::readings::{ContainerReading, SYSTEM_KIND};

/// How long the API's state may take to reach the index (the agent's part).
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long kwok, the node's stand-in kubelet, may take to run a pod or finish its deletion. Not the
/// agent's part: usually well under a second, but kwok works through its pods in order, so with
/// thousands of pods on the node (a benchmark on the same control plane) it lags by a minute or more.
const KWOK_TIMEOUT: Duration = Duration::from_secs(180);
/// The container id a kubelet would report for the stress container (set through the status).
const CONTAINER_ID: &str = "5e1f7c0d9a8b6e4f3c2d1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d";

/// The kwok node of the test control plane (`hack/testenv env` exports it).
fn node() -> String {
    std::env::var("STRESSMIX_TESTENV_NODE").unwrap_or_else(|_| "kwok-node-0".to_owned())
}

/// A client for the current kubeconfig; panics with instructions when the API does not answer.
async fn connect() -> Client {
    let hint = "the test control plane is not reachable: run `make test-k8s`, or \
                `hack/testenv up && eval \"$(hack/testenv env)\"` before \
                `cargo test -p stressmix-agent --features cluster-tests --test cluster_pod_watch`";
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!("KUBECONFIG is not set; {hint}");
    }
    let client = Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("{hint} (kubeconfig: {e})"));
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => client,
        Ok(Err(e)) => panic!("{hint} (API: {e})"),
        Err(_) => panic!("{hint} (API did not answer within 10 s)"),
    }
}

/// Polls `check` every 100 ms until it returns Some, or panics after `timeout`.
async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One test's namespace, deleted on drop (its pods forced, as some sit on a node that does not exist).
struct TestNs {
    pods: Api<Pod>,
    name: String,
}

impl TestNs {
    async fn new(test: &str) -> TestNs {
        let client = connect().await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!("{test}-{:x}{:x}", std::process::id() % 4096, nanos % 65536);
        let obj: Namespace = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { "stressmix.dev/test": test } }
        }))
        .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .expect("create test namespace");
        // The ServiceAccount admission plugin refuses pods until the default ServiceAccount exists.
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait_until("the default ServiceAccount", TIMEOUT, || async {
            sas.get_opt("default").await.ok().flatten().map(|_| ())
        })
        .await;
        TestNs {
            pods: Api::namespaced(client, &name),
            name,
        }
    }

    /// Creates a pod with one container bound to `node`; returns its UID.
    async fn create_pod(&self, name: &str, node: &str, labels: serde_json::Value) -> String {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "nodeName": node,
                "containers": [{ "name": "stress", "image": "stressmix.invalid/stress:test" }],
            },
        }))
        .expect("pod object");
        let created = self
            .pods
            .create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
        created.uid().expect("the API server sets a UID")
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        // Synchronous and best effort; the namespace controller removes whatever is left.
        for args in [
            &[
                "delete",
                "pods",
                "--all",
                "--grace-period=0",
                "--force",
                "-n",
                &self.name,
            ][..],
            &[
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ][..],
        ] {
            let _ = Command::new("kubectl")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A reading of the cgroup at `path`, attribution fields empty (as the collector hands it over).
fn reading(path: &str) -> ContainerReading {
    ContainerReading {
        cgroup_id: Some(1),
        cgroup_path: path.to_owned(),
        ..ContainerReading::default()
    }
}

/// The systemd-driver path of a container of a BestEffort pod (kwok's pods have no requests).
fn systemd_path(uid: &str, container_id: &str) -> String {
    let escaped = uid.replace('-', "_");
    format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{escaped}.slice/cri-containerd-{container_id}.scope"
    )
}

/// The cgroupfs-driver path of the same.
fn cgroupfs_path(uid: &str, container_id: &str) -> String {
    format!("/kubepods/besteffort/pod{uid}/{container_id}")
}

fn attributed(index: &PodIndex, path: &str) -> ContainerReading {
    let mut r = reading(path);
    index.attribute(&mut r);
    r
}

/// Waits until a reading of `path` is attributed to a pod and satisfies `done`; returns it.
async fn wait_attributed(
    watch: &PodWatch,
    what: &str,
    path: &str,
    done: impl Fn(&ContainerReading) -> bool,
) -> ContainerReading {
    wait_until(what, TIMEOUT, || async {
        let r = attributed(&watch.index(), path);
        (r.pod.is_some() && done(&r)).then_some(r)
    })
    .await
}

#[tokio::test]
async fn stress_pod_on_this_node_is_attributed_and_other_nodes_pods_never_seen() {
    let ns = TestNs::new("pod-watch-stress").await;
    let watch = PodWatch::start(&node()).await.expect("start the pod watch");

    // Created first: were the field selector not applied by the server, this pod's ADDED event
    // would reach the store before the next pod's.
    let elsewhere = ns
        .create_pod(
            "elsewhere",
            "other-node",
            json!({ LABEL_WORKLOAD: "lab", LABEL_KIND: "cpu" }),
        )
        .await;
    let uid = ns
        .create_pod(
            "lab-cpu-0",
            &node(),
            json!({ LABEL_WORKLOAD: "lab", LABEL_KIND: "cpu" }),
        )
        .await;

    let r = wait_attributed(
        &watch,
        "the stress pod in the index",
        &systemd_path(&uid, CONTAINER_ID),
        |_| true,
    )
    .await;
    assert_eq!(r.namespace.as_deref(), Some(ns.name.as_str()));
    assert_eq!(r.pod.as_deref(), Some("lab-cpu-0"));
    assert_eq!(r.workload.as_deref(), Some("lab"));
    assert_eq!(r.kind.as_deref(), Some("cpu"));
    assert_eq!(r.pod_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(r.container_id.as_deref(), Some(CONTAINER_ID));

    // The pod on another node: its UID is unknown to the index, so its cgroup is path-only "system".
    let r = attributed(&watch.index(), &systemd_path(&elsewhere, CONTAINER_ID));
    assert_eq!(r.pod, None, "a pod of another node reached the index");
    assert_eq!(r.namespace, None);
    assert_eq!(r.kind.as_deref(), Some(SYSTEM_KIND));
    assert_eq!(r.pod_uid.as_deref(), Some(elsewhere.as_str()));

    // A container id reported in the pod's status (as a kubelet does once the container runs)
    // reaches the index through the watch's update events and names the container. Patched after
    // kwok has run the pod, so kwok's own status update cannot overwrite it.
    wait_until(
        "kwok to make the stress pod Ready",
        KWOK_TIMEOUT,
        || async {
            let pod = ns.pods.get("lab-cpu-0").await.ok()?;
            let ready = pod
                .status?
                .conditions?
                .into_iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(())
        },
    )
    .await;
    ns.pods
        .patch_status(
            "lab-cpu-0",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "status": { "containerStatuses": [
                { "name": "stress", "containerID": format!("containerd://{CONTAINER_ID}") }
            ] } })),
        )
        .await
        .expect("patch the pod's container status");
    let r = wait_attributed(
        &watch,
        "the container id from the pod's status in the index",
        &cgroupfs_path(&uid, CONTAINER_ID),
        |r| r.container.is_some(),
    )
    .await;
    assert_eq!(r.container.as_deref(), Some("stress"));
    assert_eq!(r.pod.as_deref(), Some("lab-cpu-0"));
    assert_eq!(r.kind.as_deref(), Some("cpu"));

    // Still never seen, after the updates too.
    let r = attributed(&watch.index(), &cgroupfs_path(&elsewhere, CONTAINER_ID));
    assert_eq!(r.pod, None, "a pod of another node reached the index");
}

#[tokio::test]
async fn pod_without_stress_labels_is_named_but_system() {
    let ns = TestNs::new("pod-watch-plain").await;
    let watch = PodWatch::start(&node()).await.expect("start the pod watch");
    let uid = ns
        .create_pod("plain", &node(), json!({ "app": "not-stress" }))
        .await;

    let r = wait_attributed(
        &watch,
        "the unlabelled pod in the index",
        &cgroupfs_path(&uid, CONTAINER_ID),
        |_| true,
    )
    .await;
    assert_eq!(r.namespace.as_deref(), Some(ns.name.as_str()));
    assert_eq!(r.pod.as_deref(), Some("plain"));
    assert_eq!(r.workload, None);
    assert_eq!(r.kind.as_deref(), Some(SYSTEM_KIND));
    assert_eq!(r.pod_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(r.container_id.as_deref(), Some(CONTAINER_ID));
}

#[tokio::test]
async fn deleted_pod_leaves_the_index() {
    let ns = TestNs::new("pod-watch-delete").await;
    let watch = PodWatch::start(&node()).await.expect("start the pod watch");
    let uid = ns
        .create_pod(
            "lab-memory-0",
            &node(),
            json!({ LABEL_WORKLOAD: "lab", LABEL_KIND: "memory" }),
        )
        .await;
    let path = systemd_path(&uid, CONTAINER_ID);
    let r = wait_attributed(&watch, "the pod in the index", &path, |_| true).await;
    assert_eq!(r.kind.as_deref(), Some("memory"));

    // A graceful delete: kwok (the node) finishes it, and the watch's DELETED event drops the pod.
    ns.pods
        .delete("lab-memory-0", &DeleteParams::default())
        .await
        .expect("delete the pod");
    wait_until(
        "kwok to finish the pod's deletion",
        KWOK_TIMEOUT,
        || async {
            let pod = ns.pods.get_opt("lab-memory-0").await.ok()?;
            pod.is_none().then_some(())
        },
    )
    .await;
    wait_until("the deleted pod to leave the index", TIMEOUT, || async {
        attributed(&watch.index(), &path)
            .pod
            .is_none()
            .then_some(())
    })
    .await;

    let r = attributed(&watch.index(), &path);
    assert_eq!(r.pod, None);
    assert_eq!(r.namespace, None);
    assert_eq!(r.workload, None);
    assert_eq!(r.kind.as_deref(), Some(SYSTEM_KIND));
    assert_eq!(
        r.pod_uid.as_deref(),
        Some(uid.as_str()),
        "path-only attribution keeps the uid"
    );
}
