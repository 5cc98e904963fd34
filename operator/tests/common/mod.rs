//! Shared harness of the cluster integration tests (`operator/tests/cluster*.rs`).
//!
//! They run against the test control plane (`hack/testenv up`; `make test-k8s` does it), reached
//! through `KUBECONFIG`. Every test gets its own namespace and, when it needs one, its own operator
//! process watching only that namespace, so tests run in parallel without seeing each other.
//! A missing control plane is a test failure, never a skip: these tests only compile with the
//! `cluster-tests` feature, which is only enabled by the target that starts the control plane.
#![allow(dead_code)] // each test binary uses a different subset of the harness

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

pub const KINDS: [&str; 4] = ["cpu", "memory", "io", "disk"];
pub const LABEL_WORKLOAD: &str = "stressmix.dev/workload";
pub const LABEL_KIND: &str = "stressmix.dev/kind";
pub const LABEL_TEMPLATE_HASH: &str = "stressmix.dev/template-hash";
/// The image the test operators give their pods (kwok never pulls it).
pub const TEST_IMAGE: &str = "stressmix/stressmix:test";

/// The repository root (operator/..).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator crate lives inside the repository")
        .to_path_buf()
}

pub fn workload_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("stressmix.dev", "v1alpha1", "Workload"),
        "workloads",
    )
}

/// Runs kubectl (the one `hack/testenv env` put first on PATH) and returns stdout; panics with
/// stderr on failure.
pub fn kubectl(args: &[&str]) -> String {
    let out = kubectl_output(args);
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn kubectl_output(args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl on PATH: run `eval \"$(hack/testenv env)\"` or `make test-k8s`")
}

static CRD_APPLIED: Once = Once::new();

/// Applies `crds/` once per test binary and waits until the API serves it.
pub fn apply_crds() {
    CRD_APPLIED.call_once(|| {
        // STRESSMIX_TEST_CRDS points at a candidate CRD (file or folder) to try before it lands.
        let crds = std::env::var_os("STRESSMIX_TEST_CRDS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("crds"));
        let crds = crds.to_str().expect("utf-8 path");
        kubectl(&["apply", "--server-side", "--force-conflicts", "-f", crds]);
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/workloads.stressmix.dev",
        ]);
    });
}

/// One test's view of the cluster: a client and a fresh namespace, deleted on drop.
pub struct TestEnv {
    pub client: Client,
    pub ns: String,
}

impl TestEnv {
    /// Connects, fails loudly when the control plane is not reachable, installs the CRD and creates
    /// a namespace named after the test.
    pub async fn new(test: &str) -> TestEnv {
        let client = connect().await;
        apply_crds();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let ns = format!("{test}-{:x}{:x}", std::process::id() % 4096, nanos % 65536);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let obj: Namespace = serde_json::from_value(json!({
            "metadata": { "name": ns, "labels": { "stressmix.dev/test": test } }
        }))
        .expect("namespace object");
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .expect("create test namespace");
        // The ServiceAccount admission plugin refuses pods until the namespace's default
        // ServiceAccount exists (the controller-manager creates it).
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &ns);
        wait_until(
            "default ServiceAccount",
            Duration::from_secs(30),
            || async { sas.get_opt("default").await.ok().flatten().map(|_| ()) },
        )
        .await;
        TestEnv { client, ns }
    }

    pub fn workloads(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &workload_resource())
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn events(&self) -> Api<Event> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates a Workload from its `spec` (JSON); panics if the API server refuses it.
    pub async fn create_workload(&self, name: &str, spec: Value) -> DynamicObject {
        self.try_create_workload(name, spec)
            .await
            .unwrap_or_else(|e| panic!("create Workload {name}: {e}"))
    }

    pub async fn try_create_workload(
        &self,
        name: &str,
        spec: Value,
    ) -> Result<DynamicObject, kube::Error> {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "stressmix.dev/v1alpha1",
            "kind": "Workload",
            "metadata": { "name": name, "namespace": self.ns },
            "spec": spec,
        }))
        .expect("Workload object");
        self.workloads().create(&PostParams::default(), &obj).await
    }

    /// Merge-patches a Workload's spec.
    pub async fn patch_spec(&self, name: &str, spec_patch: Value) {
        self.workloads()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec_patch })),
            )
            .await
            .unwrap_or_else(|e| panic!("patch Workload {name}: {e}"));
    }

    pub async fn get_workload(&self, name: &str) -> DynamicObject {
        self.workloads()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get Workload {name}: {e}"))
    }

    /// Every pod of a Workload, finished and terminating ones included.
    pub async fn workload_pods(&self, workload: &str) -> Vec<Pod> {
        self.pods()
            .list(&ListParams::default().labels(&format!("{LABEL_WORKLOAD}={workload}")))
            .await
            .expect("list pods")
            .items
    }

    /// Live pods per kind: not terminating and not finished.
    pub async fn live_per_kind(&self, workload: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for pod in self.workload_pods(workload).await {
            if is_live(&pod) {
                *counts.entry(pod_kind(&pod)).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Sets a pod's phase through the status subresource, as a kubelet does when a container exits.
    pub async fn finish_pod(&self, name: &str, phase: &str) {
        let (exit_code, reason) = if phase == "Succeeded" {
            (0, "Completed")
        } else {
            (1, "Error")
        };
        self.finish_pod_with(name, phase, exit_code, reason, "")
            .await;
    }

    /// Ends a pod's container with `exit_code`, `reason` and termination `message`, and sets the
    /// pod's phase, as a kubelet does when the container exits.
    pub async fn finish_pod_with(
        &self,
        name: &str,
        phase: &str,
        exit_code: i32,
        reason: &str,
        message: &str,
    ) {
        let pod = self.pods().get(name).await.expect("get pod to finish");
        let container = pod.spec.as_ref().expect("pod spec").containers[0]
            .name
            .clone();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = json!({ "status": {
            "phase": phase,
            "conditions": [{ "type": "Ready", "status": "False", "lastTransitionTime": now }],
            "containerStatuses": [{
                "name": container, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": { "terminated": { "exitCode": exit_code, "reason": reason,
                  "message": message, "startedAt": now, "finishedAt": now } }
            }]
        }});
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .unwrap_or_else(|e| panic!("set phase {phase} on pod {name}: {e}"));
    }

    pub async fn delete_pod(&self, name: &str) {
        self.pods()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete pod {name}: {e}"));
    }

    /// Starts an operator that watches only this test's namespace and keeps its lease there.
    pub fn start_operator(&self, identity: &str) -> Operator {
        Operator::start(&self.ns, identity)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Synchronous and best effort: the namespace controller removes whatever the test left.
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "namespace",
                &self.ns,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A client for the current kubeconfig; panics with instructions when the API does not answer.
pub async fn connect() -> Client {
    let hint = "the test control plane is not reachable: run `make test-k8s`, or \
                `hack/testenv up && eval \"$(hack/testenv env)\"` before `cargo test --features cluster-tests`";
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
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
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

pub fn pod_kind(pod: &Pod) -> String {
    pod.labels().get(LABEL_KIND).cloned().unwrap_or_default()
}

pub fn pod_phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// A pod that counts against the desired count: not being deleted and not finished.
pub fn is_live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(pod_phase(pod).as_str(), "Succeeded" | "Failed")
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The condition `type_` of a Workload's status, if set.
pub fn condition(wl: &DynamicObject, type_: &str) -> Option<Value> {
    wl.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// A spec with the given replicas per kind and a long duration/lifetime so nothing expires
/// during a test unless the test asks for it.
pub fn spec_with(mix: &[(&str, u64)]) -> Value {
    let mix: Vec<Value> = mix
        .iter()
        .map(|(kind, replicas)| match *kind {
            // memory and disk require `bytes` (below the 128Mi limit / within the scratch size).
            "memory" | "disk" => json!({ "kind": kind, "replicas": replicas, "bytes": "16Mi" }),
            _ => json!({ "kind": kind, "replicas": replicas }),
        })
        .collect();
    json!({
        "mix": mix,
        "template": {
            "resources": { "limits": { "cpu": "100m", "memory": "128Mi" } },
            "durationSeconds": 3000,
            "lifetimeSeconds": 3600,
        }
    })
}

/// Waits until the live pods per kind equal `want` (kinds with 0 may be absent).
pub async fn wait_live_counts(
    env: &TestEnv,
    workload: &str,
    want: &[(&str, usize)],
    timeout: Duration,
) {
    let want: BTreeMap<String, usize> = want
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
    let start = Instant::now();
    loop {
        let last = env.live_per_kind(workload).await;
        if last == want {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?}: live pods per kind {last:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An operator process (the binary cargo built for this package) that is killed on drop.
pub struct Operator {
    child: Option<Child>,
    pub log: PathBuf,
    pub metrics_addr: String,
}

impl Operator {
    pub fn start(ns: &str, identity: &str) -> Operator {
        Self::start_with_env(ns, identity, &[])
    }

    /// Like [`Operator::start`], with extra environment variables (e.g. allocator tuning).
    pub fn start_with_env(ns: &str, identity: &str, env: &[(&str, &str)]) -> Operator {
        let bin = env!("CARGO_BIN_EXE_stressmix-operator");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port for operator metrics")
            .port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let log_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("cluster-test-logs");
        std::fs::create_dir_all(&log_dir).expect("create operator log dir");
        let log = log_dir.join(format!("{ns}-{identity}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("operator log file");
        let child = Command::new(bin)
            .args([
                "--namespace",
                ns,
                "--lease-namespace",
                ns,
                "--identity",
                identity,
                "--metrics-addr",
                &metrics_addr,
                "--default-image",
                TEST_IMAGE,
            ])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        Operator {
            child: Some(child),
            log,
            metrics_addr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or_default()
    }

    /// The value of the series `series` (name and labels as exposed, e.g.
    /// `stressmix_operator_workload_records{record="status"}`) on the operator's `/metrics`; None
    /// when it is not exposed (or the operator does not answer yet).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(&self.metrics_addr)
            .await
            .ok()?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: operator\r\n\r\n")
            .await
            .ok()?;
        let mut response = String::new();
        conn.read_to_string(&mut response).await.ok()?;
        response.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// SIGKILL: no chance to release the lease or finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the exit status (the contract: exit 0 after releasing the lease).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Fails the test if the operator has exited; shows the end of its log.
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "operator exited early ({status}); log tail:\n{}",
                tail(&self.log, 30)
            );
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let _ = writeln!(
                std::io::stderr(),
                "operator log {}:\n{}",
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
