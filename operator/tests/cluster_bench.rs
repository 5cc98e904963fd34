//! Operator benchmark on the test control plane (not part of `make test`; run `make bench-operator`).
//!
//! Side by side in one run, on the same API server, scheduler and kwok node:
//! 1. time from creating 1,000 stressmix pods / a 1,000-replica ReplicaSet to 1,000 pods Running. A
//!    Workload holds at most 100 pods per kind (300 in all), so the stressmix side is 10 Workloads of
//!    100 cpu pods, all created at once. Beside them the floor: the same 1,000 pods created by a plain
//!    client with the operator's parallelism and no controller, the best any controller can do here.
//!    Three rounds (`STRESSMIX_BENCH_APPLY_ROUNDS`), the sides' order rotating, medians compared; each
//!    ramp says when its pods were created, bound and Running, which API requests it cost and how
//!    much CPU each control-plane process and the operator spent (`bench_support`).
//!    `STRESSMIX_BENCH_APPLY_ONLY=1` stops after this phase;
//! 2. reaction latency, pod deleted -> replacement created (seen on a watch), stressmix vs the
//!    built-in ReplicaSet controller, at 100 and 1,000 pods (median, p99);
//! 3. the operator's resident memory (VmRSS) while it manages 1,000 and 10,000 pods (100 Workloads
//!    of 100), then after a restart at 10,000 pods with the default allocator settings and with
//!    `MALLOC_ARENA_MAX=2`, to tell retained objects from allocator fragmentation of the ramp-up.
//!
//! Prints a Markdown table on stdout. Built with `harness = false`: this file's `main` is the bench.

mod bench_support;
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bench_support::{
    Ramp, cpu_by_process, cpu_delta, request_counts, request_delta, wait_deletes_quiet,
};
use common::{Operator, TestEnv, is_live, spec_with, wait_until};
use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use stressmix_api::workload::{StressKind, Workload};
use stressmix_operator::app::RECONCILE_CONCURRENCY;
use stressmix_operator::executor::API_CONCURRENCY;
use stressmix_operator::podspec::build_pod;
use tokio::sync::mpsc;

/// Deletions measured per size and controller.
const SAMPLES: usize = 100;
/// Pods per benchmark Workload: the per-kind maximum of the CRD, one kind (cpu).
const PER_WORKLOAD: usize = stressmix_api::workload::MAX_REPLICAS_PER_KIND as usize;
/// Selects every pod the operator manages in the benchmark namespace.
const MANAGED: &str = "app.kubernetes.io/managed-by=stressmix-operator";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Rows are printed as soon as they are measured, so a later phase that fails keeps the earlier ones.
    println!("| measurement | stressmix operator | ReplicaSet controller |");
    println!("|---|---|---|");
    let stress = TestEnv::new("bench-wl").await;
    let rs = TestEnv::new("bench-rs").await;
    let mut op = stress.start_operator("bench");
    let name = |i: usize| format!("big{i}");

    // 1. apply -> 1,000 Running, each side on the empty node (the node's other pods slow the
    // scheduler and kwok), in rounds whose order rotates: the floor, one ReplicaSet of 1,000 (scaled
    // to 0 between its turns), 10 Workloads of 100 created together (deleted between turns).
    let floor = TestEnv::new("bench-floor").await;
    let in_flight = usize::from(RECONCILE_CONCURRENCY) * API_CONCURRENCY;
    let rounds: usize = std::env::var("STRESSMIX_BENCH_APPLY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let workload_names = || (0..1000 / PER_WORKLOAD).map(name);
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut rs_created = false;
    for round in 0..rounds {
        for turn in 0..3 {
            let side = (round + turn) % 3;
            let ramp = match side {
                0 => {
                    let r = ramp(&floor, "app=floor", || {
                        create_pods(&floor, "floor", 1000, in_flight)
                    })
                    .await;
                    floor
                        .pods()
                        .delete_collection(&DeleteParams::default(), &ListParams::default())
                        .await
                        .ok();
                    wait_pods_gone(&floor, "app=floor").await;
                    r
                }
                1 => {
                    let r = ramp(&rs, "app=bench", || async {
                        if rs_created {
                            scale_replicaset(&rs, "bench", 1000).await;
                        } else {
                            create_replicaset(&rs, "bench", 1000).await;
                        }
                    })
                    .await;
                    rs_created = true;
                    scale_replicaset(&rs, "bench", 0).await;
                    wait_pods_gone(&rs, "app=bench").await;
                    r
                }
                _ => {
                    let r = ramp(&stress, MANAGED, || {
                        create_workloads(&stress, workload_names())
                    })
                    .await;
                    for n in workload_names() {
                        stress
                            .workloads()
                            .delete(&n, &DeleteParams::foreground())
                            .await
                            .expect("delete benchmark Workload");
                    }
                    wait_pods_gone(&stress, MANAGED).await;
                    wait_until(
                        "benchmark Workloads removed",
                        Duration::from_secs(300),
                        || async {
                            let left =
                                stress.workloads().list(&ListParams::default()).await.ok()?;
                            left.items.is_empty().then_some(())
                        },
                    )
                    .await;
                    r
                }
            };
            times[side].push(ramp.0.as_secs_f64());
            let who = ["floor", "ReplicaSet", "stressmix"][side];
            println!(
                "| round {}: {who}, apply -> 1,000 Running | {:.1} s; created / bound / Running at {}; requests: {} | - |",
                round + 1,
                ramp.0.as_secs_f64(),
                ramp.1,
                ramp.2
            );
        }
    }
    let [t_floor, t_rs, t_wl] = times.map(|t| median(&t));
    println!(
        "| apply -> 1,000 pods Running (stressmix: 10 Workloads x 100), median of {rounds} | {t_wl:.1} s | {t_rs:.1} s |"
    );
    println!(
        "| apply -> 1,000 pods Running: the floor (a plain client, the same pods, {in_flight} creates in flight, no controller), median of {rounds} | {t_floor:.1} s | - |"
    );
    println!(
        "| apply -> 1,000 Running against the floor | {:.2}x | {:.2}x |",
        t_wl / t_floor,
        t_rs / t_floor
    );
    if std::env::var_os("STRESSMIX_BENCH_APPLY_ONLY").is_some() {
        drop(op);
        remove_namespaces(stress, rs, floor).await;
        return;
    }
    // The later phases start from both controllers' 1,000 pods Running.
    scale_replicaset(&rs, "bench", 1000).await;
    create_workloads(&stress, workload_names()).await;
    wait_running(&rs, "app=bench", 1000).await;
    wait_running(&stress, MANAGED, 1000).await;
    op.assert_running();
    let rss_1000 = rss_kib(op.pid());

    // 2. reaction latency at 1,000 (10 Workloads), then at 100 (one Workload; the other nine
    // scaled to 0 and the ReplicaSet to 100).
    for n in [1000usize, 100] {
        if n != 1000 {
            for i in 1..1000 / PER_WORKLOAD {
                stress
                    .patch_spec(
                        &name(i),
                        json!({ "mix": [{ "kind": "cpu", "replicas": 0 }] }),
                    )
                    .await;
            }
            scale_replicaset(&rs, "bench", n).await;
            wait_running(&stress, MANAGED, n).await;
            wait_running(&rs, "app=bench", n).await;
        }
        let (wl_lat, rs_lat) = reaction_latencies(&stress, MANAGED, &rs, "app=bench").await;
        println!(
            "| delete -> replacement created, {n} pods: median / p99 | {} / {} ms | {} / {} ms |",
            pct(&wl_lat, 50),
            pct(&wl_lat, 99),
            pct(&rs_lat, 50),
            pct(&rs_lat, 99)
        );
    }
    op.assert_running();

    // 3. resident memory at 10,000 managed pods (100 Workloads of 100). The ReplicaSet is removed
    // first so the node holds only the pods the operator manages.
    rs.pods()
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .ok();
    Api::<ReplicaSet>::namespaced(rs.client.clone(), &rs.ns)
        .delete("bench", &DeleteParams::default())
        .await
        .ok();
    for i in 1..1000 / PER_WORKLOAD {
        stress
            .patch_spec(
                &name(i),
                json!({ "mix": [{ "kind": "cpu", "replicas": PER_WORKLOAD }] }),
            )
            .await;
    }
    create_workloads(
        &stress,
        (1000 / PER_WORKLOAD..10_000 / PER_WORKLOAD).map(name),
    )
    .await;
    let t_10k = Instant::now();
    wait_until(
        "10,000 stressmix pods Running",
        Duration::from_secs(1200),
        || async { (count_running(&stress, MANAGED).await >= 10_000).then_some(()) },
    )
    .await;
    let t_10k = t_10k.elapsed();
    // Let the watch caches settle and the allocator return what the ramp-up used.
    tokio::time::sleep(Duration::from_secs(10)).await;
    op.assert_running();
    let rss_10000 = rss_kib(op.pid());

    // The same 10,000 pods seen by a freshly started operator (one streaming list, no ramp-up),
    // with the default glibc arenas and with MALLOC_ARENA_MAX=2.
    let rss_restarted = restarted_rss(&stress, &mut op, "bench-restart", &[]).await;
    let rss_arena2 = restarted_rss(
        &stress,
        &mut op,
        "bench-arena2",
        &[("MALLOC_ARENA_MAX", "2")],
    )
    .await;
    for (what, kib) in [
        ("1,000 managed pods", rss_1000),
        ("10,000 managed pods (after the ramp-up)", rss_10000),
        ("10,000 managed pods, freshly restarted", rss_restarted),
        (
            "10,000 managed pods, freshly restarted, MALLOC_ARENA_MAX=2",
            rss_arena2,
        ),
    ] {
        println!(
            "| operator VmRSS, {what} | {:.1} MiB | - |",
            kib as f64 / 1024.0
        );
    }
    println!(
        "| 9,000 more pods (90 more Workloads) -> 10,000 Running | {:.1} s | - |",
        t_10k.as_secs_f64()
    );

    drop(op);
    remove_namespaces(stress, rs, floor).await;
}

/// Leaves the cluster clean for the next run: the namespaces go, and the garbage collector and kwok
/// remove their pods (awaited, so a following run starts from an empty node). Only this run's
/// namespaces are awaited: other users of the control plane may have pods of their own.
async fn remove_namespaces(stress: TestEnv, rs: TestEnv, floor: TestEnv) {
    let namespaces: Api<Namespace> = Api::all(stress.client.clone());
    let ours = [stress.ns.clone(), rs.ns.clone(), floor.ns.clone()];
    drop(stress);
    drop(rs);
    drop(floor);
    wait_until(
        "benchmark namespaces removed",
        Duration::from_secs(1800),
        || async {
            for ns in &ours {
                if namespaces.get_opt(ns).await.ok()?.is_some() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// Creates one 100-pod cpu Workload per name, all requests in flight together.
async fn create_workloads(env: &TestEnv, names: impl Iterator<Item = String>) {
    join_all(names.map(|n| async move {
        env.create_workload(&n, long_lived(&[("cpu", PER_WORKLOAD as u64)]))
            .await;
    }))
    .await;
}

/// Stops `op` with SIGTERM (it releases the Lease), starts a new operator with `env` in its place,
/// lets it list the pods and reconcile every Workload, and returns its VmRSS in KiB.
async fn restarted_rss(
    stress: &TestEnv,
    op: &mut Operator,
    identity: &str,
    env: &[(&str, &str)],
) -> u64 {
    op.terminate(Duration::from_secs(20));
    *op = Operator::start_with_env(&stress.ns, identity, env);
    // Takeover (the Lease is free), one streaming list of 10,000 pods, 100 reconciles with nothing to
    // do; then the RSS is sampled until it stops growing.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut last = 0;
    for _ in 0..10 {
        op.assert_running();
        let now = rss_kib(op.pid());
        if now <= last {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    op.assert_running();
    assert_eq!(
        count_running(stress, MANAGED).await,
        10_000,
        "the restarted operator changed the settled pod set"
    );
    last
}

/// A spec whose pods neither finish nor expire during the benchmark.
fn long_lived(mix: &[(&str, u64)]) -> serde_json::Value {
    let mut spec = spec_with(mix);
    spec["template"]["durationSeconds"] = json!(0);
    spec["template"]["lifetimeSeconds"] = json!(604800);
    spec
}

/// The spec the operator gives each pod of a benchmark Workload (built by its own `build_pod`), so
/// both controllers create the same pods; only `restartPolicy` differs, as a ReplicaSet requires
/// `Always`.
fn operator_pod_spec() -> serde_json::Value {
    let wl: Workload = serde_json::from_value(json!({
        "apiVersion": "stressmix.dev/v1alpha1",
        "kind": "Workload",
        "metadata": { "name": "bench", "namespace": "bench", "uid": "bench-uid" },
        "spec": long_lived(&[("cpu", 1)]),
    }))
    .expect("benchmark Workload");
    let entry = wl.spec.entry(StressKind::Cpu).expect("cpu entry");
    let pod = build_pod(&wl, entry, "bench-cpu-0", "bench", common::TEST_IMAGE).expect("pod");
    let mut spec = serde_json::to_value(pod.spec).expect("pod spec");
    spec["restartPolicy"] = json!("Always");
    spec
}

/// Creates `n` pods of the operator's spec labelled `app=<name>` with a plain client, `in_flight`
/// requests at a time.
async fn create_pods(env: &TestEnv, name: &str, n: usize, in_flight: usize) {
    let mut spec = operator_pod_spec();
    spec["restartPolicy"] = json!("Never");
    let api = env.pods();
    let pods: Vec<Pod> = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": { "name": format!("{name}-cpu-{i}"), "labels": { "app": name } },
                "spec": spec,
            }))
            .expect("pod object")
        })
        .collect();
    futures::stream::iter(pods)
        .map(|pod| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &pod)
                    .await
                    .expect("create pod");
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<()>>()
        .await;
}

async fn create_replicaset(env: &TestEnv, name: &str, replicas: usize) {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": operator_pod_spec(),
            }
        }
    }))
    .expect("ReplicaSet object");
    Api::<ReplicaSet>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &rs)
        .await
        .expect("create ReplicaSet");
}

async fn scale_replicaset(env: &TestEnv, name: &str, replicas: usize) {
    Api::<ReplicaSet>::namespaced(env.client.clone(), &env.ns)
        .patch(
            name,
            &Default::default(),
            &kube::api::Patch::Merge(json!({ "spec": { "replicas": replicas } })),
        )
        .await
        .expect("scale ReplicaSet");
}

/// The pods `selector` picks in the namespace; None when the list fails (the caller polls again).
async fn pods_of(env: &TestEnv, selector: &str) -> Option<Vec<Pod>> {
    let pods = env.pods();
    let list = pods.list(&ListParams::default().labels(selector)).await;
    Some(list.ok()?.items)
}

async fn count_running(env: &TestEnv, selector: &str) -> usize {
    let pods = pods_of(env, selector).await.unwrap_or_default();
    pods.iter()
        .filter(|p| is_live(p) && common::pod_phase(p) == "Running")
        .count()
}

/// Waits until exactly `n` live pods run (surplus being removed counts as not yet there).
async fn wait_running(env: &TestEnv, selector: &str, n: usize) {
    wait_until(
        &format!("{n} pods Running in {}", env.ns),
        Duration::from_secs(600),
        || async {
            let pods = pods_of(env, selector).await?;
            let live: Vec<&Pod> = pods.iter().filter(|p| is_live(p)).collect();
            (live.len() == n && live.iter().all(|p| common::pod_phase(p) == "Running"))
                .then_some(())
        },
    )
    .await;
}

/// Runs `create` and watches its 1,000 pods to Running: (time, the stages' summary, the API requests
/// made meanwhile by every client, the control plane's included).
async fn ramp<F, Fut>(env: &TestEnv, selector: &str, create: F) -> (Duration, String, String)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    wait_deletes_quiet(&env.client).await;
    let before = request_counts(&env.client).await;
    let cpu_before = cpu_by_process();
    let start = Instant::now();
    let watch = Ramp::watch(env.pods(), selector, start);
    create().await;
    let stages = watch.until_running(1000, Duration::from_secs(600)).await;
    let took = start.elapsed();
    let cpu = cpu_delta(&cpu_before, &cpu_by_process());
    let after = request_counts(&env.client).await;
    let requests = request_delta(&before, &after, 20.0);
    (
        took,
        stages.summary(1000),
        format!("{requests}; CPU s: {cpu}"),
    )
}

/// Waits until no pod `selector` picks is left (deleted pods finish terminating on kwok).
async fn wait_pods_gone(env: &TestEnv, selector: &str) {
    wait_until(
        &format!("the pods {selector} removed from {}", env.ns),
        Duration::from_secs(300),
        || async { pods_of(env, selector).await?.is_empty().then_some(()) },
    )
    .await;
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Watches a namespace's pods and reports each pod seen for the first time (by UID).
fn watch_new_pods(env: &TestEnv, selector: &str) -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    let cfg = watcher::Config::default().labels(selector);
    let stream = watcher(env.pods(), cfg);
    tokio::spawn(async move {
        let mut seen: HashSet<String> = HashSet::new();
        let mut initialized = false;
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitApply(p)) => {
                    seen.insert(p.uid().unwrap_or_default());
                }
                Ok(watcher::Event::InitDone) => initialized = true,
                // A UID seen for the first time after the initial list: a pod was just created.
                Ok(watcher::Event::Apply(p)) => {
                    let new = seen.insert(p.uid().unwrap_or_default());
                    if new && initialized && tx.send(Instant::now()).is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    });
    rx
}

/// Deletes one live pod at a time in each namespace, alternating, and measures until the watch
/// shows a new pod; returns milliseconds (stressmix, ReplicaSet).
async fn reaction_latencies(
    stress: &TestEnv,
    wl_sel: &str,
    rs: &TestEnv,
    rs_sel: &str,
) -> (Vec<f64>, Vec<f64>) {
    let mut wl_rx = watch_new_pods(stress, wl_sel);
    let mut rs_rx = watch_new_pods(rs, rs_sel);
    tokio::time::sleep(Duration::from_secs(2)).await; // both watches past their initial list
    let (mut wl, mut rsl) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let order: [bool; 2] = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_wl in order {
            let (env, sel, rx, out) = if is_wl {
                (stress, wl_sel, &mut wl_rx, &mut wl)
            } else {
                (rs, rs_sel, &mut rs_rx, &mut rsl)
            };
            out.push(one_reaction(env, sel, rx, i).await);
        }
    }
    (wl, rsl)
}

async fn one_reaction(
    env: &TestEnv,
    selector: &str,
    rx: &mut mpsc::UnboundedReceiver<Instant>,
    i: usize,
) -> f64 {
    // The previous replacement must be Running before the next deletion, so every sample starts
    // from a full, steady set.
    let pods = wait_until("a steady pod set", Duration::from_secs(60), || async {
        let pods = pods_of(env, selector).await?;
        pods.iter()
            .all(|p| is_live(p) && common::pod_phase(p) == "Running")
            .then_some(pods)
    })
    .await;
    while rx.try_recv().is_ok() {}
    let victim = pods[(i * 7919) % pods.len()].name_any();
    let start = Instant::now();
    env.pods()
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("delete pod");
    let seen = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("replacement within 60 s")
        .expect("watch running");
    seen.duration_since(start).as_secs_f64() * 1000.0
}

fn pct(samples: &[f64], p: usize) -> String {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let idx = ((s.len() * p).div_ceil(100))
        .saturating_sub(1)
        .min(s.len().saturating_sub(1));
    s.get(idx).map_or("-".into(), |v| format!("{v:.0}"))
}

fn rss_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("operator /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}
