//! Scenarios 3 to 7 of the cluster tests: the operator binary reconciling Workloads on the real
//! API server, with the scheduler binding pods to the kwok node and the garbage collector running.
//! Each test runs its own operator watching only its own namespace.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{
    LABEL_TEMPLATE_HASH, LABEL_WORKLOAD, TestEnv, condition, is_live, is_ready, kubectl, pod_kind,
    spec_with, wait_live_counts, wait_until,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(30);

fn node_name() -> String {
    std::env::var("STRESSMIX_TESTENV_NODE").unwrap_or_else(|_| "kwok-node-0".to_string())
}

/// Waits until status reports Ready=True for the current generation, and returns the Workload.
async fn wait_ready_status(env: &TestEnv, name: &str) -> kube::api::DynamicObject {
    wait_until(
        &format!("Workload {name} status Ready=True for its generation"),
        CONVERGE,
        || async {
            let wl = env.get_workload(name).await;
            let current =
                wl.metadata.generation == wl.data["status"]["observedGeneration"].as_i64();
            let ready = condition(&wl, "Ready").is_some_and(|c| c["status"] == "True");
            (current && ready).then_some(wl)
        },
    )
    .await
}

/// The live pod of a slot (`<workload>-<kind>-<n>`), if any.
async fn live_pod(env: &TestEnv, name: &str) -> Option<Pod> {
    env.pods()
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .filter(is_live)
}

/// Waits until the slot of pod `name` holds a live pod, under either of the slot's two names
/// (`<workload>-<kind>-<n>` and `…-b`), whose UID differs from `old_uid`.
async fn wait_replaced(env: &TestEnv, name: &str, old_uid: &str, why: &str) -> Pod {
    let first = name.strip_suffix("-b").unwrap_or(name);
    let second = format!("{first}-b");
    wait_until(
        &format!("slot of pod {name} refilled after {why}"),
        CONVERGE,
        || async {
            for candidate in [first, second.as_str()] {
                if let Some(pod) = live_pod(env, candidate)
                    .await
                    .filter(|p| p.uid().as_deref() != Some(old_uid))
                {
                    return Some(pod);
                }
            }
            None
        },
    )
    .await
}

fn quantity(pod: &Pod, which: &str, resource: &str) -> Option<String> {
    let res = pod.spec.as_ref()?.containers.first()?.resources.as_ref()?;
    let map = if which == "limits" {
        res.limits.as_ref()?
    } else {
        res.requests.as_ref()?
    };
    map.get(resource).map(|q| q.0.clone())
}

/// Scenario 3: exactly the desired pods per kind, with owner references, labels, limits and the
/// restricted security context; status Ready=True with the right counts; events recorded.
#[tokio::test]
async fn creates_the_desired_pods_with_the_contracted_shape() {
    let env = TestEnv::new("create").await;
    let mut op = env.start_operator("a");
    let want = [("cpu", 2usize), ("memory", 2), ("io", 1), ("disk", 1)];
    let spec = spec_with(&[("cpu", 2), ("memory", 2), ("io", 1), ("disk", 1)]);
    let wl = env.create_workload("shape", spec).await;
    let wl_uid = wl.uid().expect("Workload uid");

    wait_live_counts(&env, "shape", &want, CONVERGE).await;
    // Every pod scheduled by the real scheduler and made ready by kwok.
    wait_until("all pods Running and Ready", CONVERGE, || async {
        let pods = env.workload_pods("shape").await;
        pods.iter()
            .all(|p| is_live(p) && is_ready(p) && common::pod_phase(p) == "Running")
            .then_some(())
    })
    .await;
    op.assert_running();

    let pods = env.workload_pods("shape").await;
    assert_eq!(
        pods.len(),
        6,
        "exactly the desired pods, no extra: {:?}",
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    let mut slots: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for pod in &pods {
        let name = pod.name_any();
        let kind = pod_kind(pod);
        slots.entry(kind.clone()).or_default().insert(name.clone());

        let labels = pod.labels();
        assert_eq!(
            labels.get(LABEL_WORKLOAD).map(String::as_str),
            Some("shape"),
            "{name} workload label"
        );
        assert!(
            ["cpu", "memory", "io", "disk"].contains(&kind.as_str()),
            "{name} kind label {kind:?}"
        );
        assert!(
            labels
                .get(LABEL_TEMPLATE_HASH)
                .is_some_and(|h| !h.is_empty()),
            "{name} template-hash label"
        );
        // The slot label names the slot the pod's name carries (`<workload>-<kind>-<slot>`).
        let slot_in_name: String = name
            .trim_start_matches(&format!("shape-{kind}-"))
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert_eq!(
            labels.get("stressmix.dev/slot"),
            Some(&slot_in_name),
            "{name} slot label"
        );
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("stressmix-operator"),
            "{name} managed-by label"
        );

        let owners = pod.owner_references();
        assert_eq!(owners.len(), 1, "{name} has one owner reference");
        let owner = &owners[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str()
            ),
            ("stressmix.dev/v1alpha1", "Workload", "shape")
        );
        assert_eq!(owner.uid, wl_uid, "{name} owner uid");
        assert_eq!(
            owner.controller,
            Some(true),
            "{name} owner is the controller"
        );
        assert_eq!(
            owner.block_owner_deletion,
            Some(true),
            "{name} blockOwnerDeletion"
        );

        for resource in ["cpu", "memory"] {
            let limit = quantity(pod, "limits", resource);
            assert!(limit.is_some(), "{name} has a {resource} limit");
            assert_eq!(
                quantity(pod, "requests", resource),
                limit,
                "{name} {resource} requests equal limits"
            );
        }
        assert_eq!(quantity(pod, "limits", "cpu").as_deref(), Some("100m"));
        assert_eq!(quantity(pod, "limits", "memory").as_deref(), Some("128Mi"));

        let spec = pod.spec.as_ref().expect("pod spec");
        assert_eq!(
            spec.node_name.as_deref(),
            Some(node_name().as_str()),
            "{name} bound to the kwok node by the scheduler"
        );
        assert_eq!(spec.containers.len(), 1, "{name} one container");
        let c = &spec.containers[0];
        let argv: Vec<String> = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .cloned()
            .collect();
        assert!(
            argv.iter().any(|a| a.ends_with("stressmix-stress")),
            "{name} runs stressmix-stress: {argv:?}"
        );
        assert!(
            argv.contains(&kind) && argv.iter().any(|a| a == "--duration"),
            "{name} argv names its kind and duration: {argv:?}"
        );

        let psc = spec.security_context.clone().unwrap_or_default();
        let csc = c.security_context.clone().unwrap_or_default();
        assert!(
            psc.run_as_non_root == Some(true) || csc.run_as_non_root == Some(true),
            "{name} runAsNonRoot"
        );
        assert_eq!(
            csc.allow_privilege_escalation,
            Some(false),
            "{name} allowPrivilegeEscalation false"
        );
        assert_eq!(
            csc.read_only_root_filesystem,
            Some(true),
            "{name} readOnlyRootFilesystem"
        );
        assert_ne!(csc.privileged, Some(true), "{name} not privileged");
        let drop = csc
            .capabilities
            .as_ref()
            .and_then(|c| c.drop.clone())
            .unwrap_or_default();
        assert!(
            drop.iter().any(|d| d == "ALL"),
            "{name} drops ALL capabilities: {drop:?}"
        );
        let seccomp = csc.seccomp_profile.or(psc.seccomp_profile).map(|s| s.type_);
        assert_eq!(
            seccomp.as_deref(),
            Some("RuntimeDefault"),
            "{name} seccomp RuntimeDefault"
        );

        if kind == "disk" {
            let volumes = spec.volumes.clone().unwrap_or_default();
            let scratch = volumes
                .iter()
                .find(|v| v.empty_dir.is_some())
                .unwrap_or_else(|| panic!("{name} has an emptyDir"));
            assert!(
                scratch
                    .empty_dir
                    .as_ref()
                    .and_then(|e| e.size_limit.as_ref())
                    .is_some(),
                "{name} emptyDir has a sizeLimit"
            );
            let mounts = c.volume_mounts.clone().unwrap_or_default();
            assert!(
                mounts
                    .iter()
                    .any(|m| m.name == scratch.name && m.mount_path == "/scratch"),
                "{name} mounts the emptyDir at /scratch"
            );
        }
    }
    for (kind, n) in want {
        let expected: BTreeSet<String> = (0..n).map(|i| format!("shape-{kind}-{i}")).collect();
        assert_eq!(
            slots.get(kind),
            Some(&expected),
            "stable slot names for {kind}"
        );
    }

    let wl = wait_ready_status(&env, "shape").await;
    let status = &wl.data["status"];
    assert_eq!(status["desired"], 6, "status.desired: {status}");
    assert_eq!(status["ready"], 6, "status.ready: {status}");
    for (kind, n) in want {
        let k = &status["kinds"][kind];
        assert_eq!(
            (
                k["desired"].as_i64(),
                k["ready"].as_i64(),
                k["running"].as_i64()
            ),
            (Some(n as i64), Some(n as i64), Some(n as i64)),
            "status.kinds.{kind}: {status}"
        );
    }
    let table = kubectl(&["get", "wl", "shape", "-n", &env.ns, "--no-headers"]);
    let row: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(
        row.get(1..3),
        Some(&["6", "6"][..]),
        "kubectl get wl shows desired and ready: {table}"
    );

    // Events: the operator records its creations on the Workload (one event per reconcile that
    // created pods, naming them); together they name every pod.
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    let created = wait_until("creation events naming every pod", CONVERGE, || async {
        let events = env.events().list(&ListParams::default()).await.ok()?.items;
        let created: Vec<_> = events
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some("Created")
                    && e.involved_object.kind.as_deref() == Some("Workload")
                    && e.involved_object.uid.as_deref() == Some(wl_uid.as_str())
            })
            .collect();
        let text: String = created
            .iter()
            .filter_map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join(" ");
        names
            .iter()
            .all(|n| text.contains(n.as_str()))
            .then_some(created)
    })
    .await;
    assert!(
        created.iter().all(|e| e.type_.as_deref() == Some("Normal")),
        "creation events are Normal"
    );
    op.assert_running();
}

/// Scenario 4: a deleted pod is replaced; a pod that completes or fails is replaced; a pod past its
/// lifetime is recycled.
#[tokio::test]
async fn replaces_deleted_finished_and_expired_pods() {
    let env = TestEnv::new("replace").await;
    let mut op = env.start_operator("a");
    env.create_workload("keep", spec_with(&[("cpu", 2), ("io", 1)]))
        .await;
    wait_live_counts(&env, "keep", &[("cpu", 2), ("io", 1)], CONVERGE).await;

    let uid = |p: Option<Pod>| p.and_then(|p| p.uid()).expect("pod exists");
    let old = uid(live_pod(&env, "keep-cpu-0").await);
    env.delete_pod("keep-cpu-0").await;
    wait_replaced(&env, "keep-cpu-0", &old, "deletion").await;

    let old = uid(live_pod(&env, "keep-cpu-1").await);
    env.finish_pod("keep-cpu-1", "Succeeded").await;
    wait_replaced(&env, "keep-cpu-1", &old, "completion").await;

    let old = uid(live_pod(&env, "keep-io-0").await);
    env.finish_pod("keep-io-0", "Failed").await;
    wait_replaced(&env, "keep-io-0", &old, "failure").await;
    wait_live_counts(&env, "keep", &[("cpu", 2), ("io", 1)], CONVERGE).await;

    // Lifetime: 6 s. kwok never ends a container, so only the lifetime can recycle these pods.
    let mut spec = spec_with(&[("memory", 2)]);
    spec["template"]["durationSeconds"] = json!(0);
    spec["template"]["lifetimeSeconds"] = json!(6);
    env.create_workload("short", spec).await;
    wait_live_counts(&env, "short", &[("memory", 2)], CONVERGE).await;
    let created = Instant::now();
    let first: BTreeMap<String, String> = env
        .workload_pods("short")
        .await
        .into_iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect();
    for (name, old) in &first {
        wait_replaced(&env, name, old, "its lifetime").await;
    }
    let elapsed = created.elapsed();
    assert!(
        elapsed >= Duration::from_secs(4),
        "pods recycled after {elapsed:?}, before their 6 s lifetime"
    );
    assert!(
        elapsed <= Duration::from_secs(6 + 15),
        "pods recycled only after {elapsed:?}"
    );
    wait_live_counts(&env, "short", &[("memory", 2)], CONVERGE).await;
    op.assert_running();
}

/// Marks a pod not ready (as a kubelet does when a readiness probe fails).
async fn make_unready(env: &TestEnv, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({ "status": { "conditions": [
        { "type": "Ready", "status": "False", "lastTransitionTime": now },
        { "type": "ContainersReady", "status": "False", "lastTransitionTime": now }
    ]}});
    env.pods()
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("mark pod not ready");
}

async fn live_names(env: &TestEnv, workload: &str) -> BTreeSet<String> {
    env.workload_pods(workload)
        .await
        .into_iter()
        .filter(is_live)
        .map(|p| p.name_any())
        .collect()
}

/// Scenario 5: scale down removes the surplus by rank (not-ready before ready, higher slots first);
/// scale up adds; a template change replaces the outdated pods.
#[tokio::test]
async fn scales_by_rank_and_rolls_template_changes() {
    let env = TestEnv::new("scale").await;
    let mut op = env.start_operator("a");
    env.create_workload("sc", spec_with(&[("cpu", 4)])).await;
    wait_live_counts(&env, "sc", &[("cpu", 4)], CONVERGE).await;
    wait_ready_status(&env, "sc").await;

    make_unready(&env, "sc-cpu-1").await;
    // Scale only once the operator has seen the readiness change (its status says so); otherwise
    // the test would race the pod watch against the Workload watch.
    wait_until("status counting 3 ready cpu pods", CONVERGE, || async {
        let wl = env.get_workload("sc").await;
        (wl.data["status"]["kinds"]["cpu"]["ready"] == 3).then_some(())
    })
    .await;
    env.patch_spec("sc", json!({ "mix": [{ "kind": "cpu", "replicas": 3 }] }))
        .await;
    wait_live_counts(&env, "sc", &[("cpu", 3)], CONVERGE).await;
    let names = live_names(&env, "sc").await;
    assert_eq!(
        names,
        ["sc-cpu-0", "sc-cpu-2", "sc-cpu-3"]
            .map(String::from)
            .into(),
        "the not-ready pod goes first"
    );

    env.patch_spec("sc", json!({ "mix": [{ "kind": "cpu", "replicas": 2 }] }))
        .await;
    wait_live_counts(&env, "sc", &[("cpu", 2)], CONVERGE).await;
    let names = live_names(&env, "sc").await;
    assert_eq!(
        names,
        ["sc-cpu-0", "sc-cpu-2"].map(String::from).into(),
        "among ready pods the highest slot goes first"
    );

    env.patch_spec("sc", json!({ "mix": [{ "kind": "cpu", "replicas": 5 }] }))
        .await;
    wait_live_counts(&env, "sc", &[("cpu", 5)], CONVERGE).await;
    let wl = wait_ready_status(&env, "sc").await;
    assert_eq!(wl.data["status"]["kinds"]["cpu"]["desired"], 5);

    let old_hash: BTreeSet<String> = env
        .workload_pods("sc")
        .await
        .iter()
        .filter_map(|p| p.labels().get(LABEL_TEMPLATE_HASH).cloned())
        .collect();
    assert_eq!(
        old_hash.len(),
        1,
        "one template hash before the change: {old_hash:?}"
    );
    env.patch_spec(
        "sc",
        json!({ "template": { "resources": { "limits": { "cpu": "200m", "memory": "128Mi" } } } }),
    )
    .await;
    wait_until(
        "every live pod rebuilt from the new template",
        CONVERGE,
        || async {
            let pods: Vec<Pod> = env
                .workload_pods("sc")
                .await
                .into_iter()
                .filter(is_live)
                .collect();
            let fresh = pods.iter().filter(|p| {
                p.labels()
                    .get(LABEL_TEMPLATE_HASH)
                    .is_some_and(|h| !old_hash.contains(h))
                    && quantity(p, "limits", "cpu").as_deref() == Some("200m")
            });
            (pods.len() == 5 && fresh.count() == 5).then_some(())
        },
    )
    .await;
    wait_ready_status(&env, "sc").await;
    op.assert_running();
}

/// Scenario 6: `suspend: true` leaves zero pods and status says so; `false` brings them back.
#[tokio::test]
async fn suspend_removes_every_pod_and_resume_restores_them() {
    let env = TestEnv::new("suspend").await;
    let mut op = env.start_operator("a");
    env.create_workload("sus", spec_with(&[("cpu", 2), ("memory", 1)]))
        .await;
    wait_live_counts(&env, "sus", &[("cpu", 2), ("memory", 1)], CONVERGE).await;

    env.patch_spec("sus", json!({ "suspend": true })).await;
    wait_until("zero pods while suspended", CONVERGE, || async {
        env.workload_pods("sus").await.is_empty().then_some(())
    })
    .await;
    let wl = wait_until("status reporting the suspension", CONVERGE, || async {
        let wl = env.get_workload("sus").await;
        let current = wl.metadata.generation == wl.data["status"]["observedGeneration"].as_i64();
        let says = wl.data["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    let text = format!("{} {}", c["reason"], c["message"]).to_lowercase();
                    text.contains("suspend")
                })
            });
        (current && says && wl.data["status"]["desired"] == 0).then_some(wl)
    })
    .await;
    assert_eq!(wl.data["status"]["ready"], 0);

    env.patch_spec("sus", json!({ "suspend": false })).await;
    wait_live_counts(&env, "sus", &[("cpu", 2), ("memory", 1)], CONVERGE).await;
    wait_ready_status(&env, "sus").await;
    op.assert_running();
}

/// Scenario 7: deleting the Workload lets the garbage collector remove every pod. The operator is
/// stopped first, so only the garbage collector can be the one deleting; and no finalizer may hold
/// the Workload.
#[tokio::test]
async fn garbage_collector_removes_pods_of_a_deleted_workload() {
    let env = TestEnv::new("gc").await;
    let mut op = env.start_operator("a");
    env.create_workload("gone", spec_with(&[("cpu", 3), ("io", 2)]))
        .await;
    wait_live_counts(&env, "gone", &[("cpu", 3), ("io", 2)], CONVERGE).await;
    let status = op.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "operator exits 0 on SIGTERM, got {status:?}"
    );

    let wl = env.get_workload("gone").await;
    assert!(
        wl.finalizers().is_empty(),
        "no finalizer on the Workload: {:?}",
        wl.finalizers()
    );
    env.workloads()
        .delete("gone", &Default::default())
        .await
        .expect("delete Workload");
    wait_until("Workload deleted", CONVERGE, || async {
        env.workloads()
            .get_opt("gone")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    wait_until(
        "garbage collector removed every pod",
        Duration::from_secs(60),
        || async { env.workload_pods("gone").await.is_empty().then_some(()) },
    )
    .await;
}

/// Runs: each finished pod's run is counted from its container's terminated state (per reason for
/// failures), `lastFailure` and `delivered` are set, an OOM kill raises an event and `Degraded`,
/// the counters survive an operator restart (they live in status), and an unchanged world writes
/// no status.
#[tokio::test]
async fn counts_runs_by_reason_and_keeps_them_across_a_restart() {
    let env = TestEnv::new("runs").await;
    let mut op = env.start_operator("a");
    env.create_workload("runs", spec_with(&[("cpu", 2), ("memory", 1)]))
        .await;
    wait_live_counts(&env, "runs", &[("cpu", 2), ("memory", 1)], CONVERGE).await;

    // 3 s of a 100m CPU limit: 0.3 CPU seconds over a 3 s run.
    let summary = json!({"kind": "cpu", "workers": 1, "duration_seconds": 3.0,
        "stopped_by_signal": false, "cpu_seconds": 0.3, "resident_bytes": 1, "max_resident_bytes": 1,
        "held_bytes": 0, "bytes_written": 0, "bytes_read": 0, "write_syscalls": 0,
        "read_syscalls": 0, "sync_syscalls": 0, "operations": 0});
    env.finish_pod_with(
        "runs-cpu-0",
        "Succeeded",
        0,
        "Completed",
        &summary.to_string(),
    )
    .await;
    env.finish_pod_with(
        "runs-cpu-1",
        "Failed",
        1,
        "Error",
        "error: stressmix-stress cpu: boom",
    )
    .await;
    env.finish_pod_with("runs-memory-0", "Failed", 137, "OOMKilled", "")
        .await;

    let counted = |wl: &kube::api::DynamicObject| {
        let s = &wl.data["status"];
        (s["completedRuns"].as_i64(), s["failedRuns"].as_i64())
    };
    let wl = wait_until("three runs counted", CONVERGE, || async {
        let wl = env.get_workload("runs").await;
        (counted(&wl) == (Some(1), Some(2))).then_some(wl)
    })
    .await;
    let kinds = &wl.data["status"]["kinds"];
    assert_eq!(kinds["cpu"]["completedRuns"], 1, "{kinds}");
    assert_eq!(kinds["cpu"]["failedRuns"]["Error"], 1, "{kinds}");
    assert_eq!(kinds["memory"]["failedRuns"]["OOMKilled"], 1, "{kinds}");
    assert_eq!(kinds["memory"]["lastFailure"]["pod"], "runs-memory-0");
    assert_eq!(kinds["memory"]["lastFailure"]["exitCode"], 137);
    assert_eq!(
        kinds["cpu"]["lastFailure"]["message"],
        "error: stressmix-stress cpu: boom"
    );
    let delivered = &kinds["cpu"]["delivered"];
    assert_eq!(delivered["unit"], "cores", "{kinds}");
    assert!(
        (delivered["ratio"].as_f64().unwrap_or_default() - 1.0).abs() < 1e-9,
        "{delivered}"
    );
    assert_eq!(
        condition(&wl, "Degraded").map(|c| c["reason"].clone()),
        Some(json!("RunsOOMKilled"))
    );
    let wl_uid = wl.uid().unwrap_or_default();
    wait_until("an OOMKilled event on the Workload", CONVERGE, || async {
        let events = env.events().list(&ListParams::default()).await.ok()?.items;
        events
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("OOMKilled")
                    && e.involved_object.uid.as_deref() == Some(wl_uid.as_str())
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains("runs-memory-0"))
            })
            .then_some(())
    })
    .await;
    wait_live_counts(&env, "runs", &[("cpu", 2), ("memory", 1)], CONVERGE).await;

    // A new operator process starts from the status: nothing counted twice, nothing lost.
    let status = op.terminate(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let _op = env.start_operator("b");
    env.finish_pod_with(
        "runs-cpu-0-b",
        "Succeeded",
        0,
        "Completed",
        &summary.to_string(),
    )
    .await;
    let wl = wait_until("the run after the restart counted", CONVERGE, || async {
        let wl = env.get_workload("runs").await;
        (counted(&wl) == (Some(2), Some(2))).then_some(wl)
    })
    .await;
    assert_eq!(
        wl.data["status"]["kinds"]["memory"]["failedRuns"]["OOMKilled"],
        1
    );

    // Settled: no status write while nothing changes.
    wait_live_counts(&env, "runs", &[("cpu", 2), ("memory", 1)], CONVERGE).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = env.get_workload("runs").await.resource_version();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = env.get_workload("runs").await;
    assert_eq!(
        after.resource_version(),
        before,
        "a status write with nothing changed"
    );
    assert_eq!(counted(&after), (Some(2), Some(2)));
}

/// While 100 pods come up, every pod event changes the counts; the status is still written at most
/// once per `STATUS_WRITE_INTERVAL`, and the last counts are written when the interval ends (nothing
/// is left held once the pods settle).
#[tokio::test]
async fn status_writes_during_a_ramp_are_spaced_and_end_complete() {
    use kube::runtime::watcher;
    use stressmix_operator::reconcile::STATUS_WRITE_INTERVAL;

    let env = TestEnv::new("ramp").await;
    let _op = env.start_operator("a");
    // Each version of the Workload the API server stores: when the watch saw it, and its ready count.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, i64)>();
    let cfg = watcher::Config::default().fields("metadata.name=ramp");
    let stream = watcher(env.workloads(), cfg);
    let watch = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut last_version = None;
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::Apply(wl) | watcher::Event::InitApply(wl)) = ev
                && wl.resource_version() != last_version
            {
                last_version = wl.resource_version();
                let ready = wl.data["status"]["ready"].as_i64().unwrap_or(-1);
                if tx.send((Instant::now(), ready)).is_err() {
                    return;
                }
            }
        }
    });
    env.create_workload("ramp", spec_with(&[("cpu", 100)]))
        .await;
    wait_live_counts(&env, "ramp", &[("cpu", 100)], Duration::from_secs(120)).await;
    wait_until("100 pods ready", Duration::from_secs(120), || async {
        let pods = env.workload_pods("ramp").await;
        (pods.iter().filter(|p| is_ready(p)).count() == 100).then_some(())
    })
    .await;
    // The held counts are written within the interval after the last pod event.
    tokio::time::sleep(STATUS_WRITE_INTERVAL * 3).await;
    watch.abort();
    let mut versions = Vec::new();
    while let Ok(v) = rx.try_recv() {
        versions.push(v);
    }
    // The first version is the Workload as created; the rest are status writes.
    let writes = &versions[1.min(versions.len())..];
    assert!(!writes.is_empty(), "no status write seen");
    assert_eq!(
        writes.last().map(|(_, ready)| *ready),
        Some(100),
        "the last status written does not count every pod ready: {versions:?}"
    );
    // Watch delivery adds jitter to the operator's spacing; a write storm is far closer.
    let least = STATUS_WRITE_INTERVAL.mul_f64(0.8);
    for pair in writes.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= least,
            "two status writes {gap:?} apart (ready {} then {}), {} writes in all",
            pair[0].1,
            pair[1].1,
            writes.len()
        );
    }
}

/// What the operator remembers per Workload (slots backing off, creates in flight, the last written
/// status) goes with the Workload: 1,000 Workloads created, some of their pods failed, all deleted,
/// and every record count returns to zero.
#[tokio::test]
async fn records_of_deleted_workloads_return_to_zero() {
    let env = TestEnv::new("records").await;
    let op = env.start_operator("a");
    let names: Vec<String> = (0..1000).map(|i| format!("r{i}")).collect();
    let spec = spec_with(&[("cpu", 1)]);
    futures::stream::iter(&names)
        .for_each_concurrent(32, |n| {
            let spec = spec.clone();
            let env = &env;
            async move {
                env.create_workload(n, spec).await;
            }
        })
        .await;
    let record = |which: &'static str| {
        let series = format!("stressmix_operator_workload_records{{record=\"{which}\"}}");
        let op = &op;
        async move { op.metric(&series).await }
    };
    wait_until(
        "a status written for each of the 1,000 Workloads",
        Duration::from_secs(180),
        || async { (record("status").await? >= 1000.0).then_some(()) },
    )
    .await;
    // Ten slots fail, so backoff records exist too.
    for n in &names[..10] {
        let pod = wait_until("the Workload's pod", CONVERGE, || async {
            env.workload_pods(n).await.into_iter().next()
        })
        .await;
        env.finish_pod(&pod.name_any(), "Failed").await;
    }
    wait_until("backoff records of the failed slots", CONVERGE, || async {
        (record("backoff").await? >= 10.0).then_some(())
    })
    .await;

    futures::stream::iter(&names)
        .for_each_concurrent(32, |n| {
            let env = &env;
            async move {
                env.workloads()
                    .delete(n, &Default::default())
                    .await
                    .expect("delete Workload");
            }
        })
        .await;
    wait_until(
        "every record of the deleted Workloads dropped",
        Duration::from_secs(120),
        || async {
            let counts = (
                record("backoff").await?,
                record("in_flight").await?,
                record("status").await?,
            );
            (counts == (0.0, 0.0, 0.0)).then_some(())
        },
    )
    .await;
}
