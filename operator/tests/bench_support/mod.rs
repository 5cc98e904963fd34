//! Where the time from apply to N pods Running goes (`cluster_bench.rs`): one watch over the pods
//! records when each is first seen (created), bound to the node (scheduled) and Running (kwok), and the
//! API server's own request counters say which requests the ramp cost, by verb and resource, and the
//! processes' CPU time says who spent the machine's two cores.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

/// When the pods of one ramp reached each stage, counted from the apply.
#[derive(Debug, Default, Clone)]
pub struct Stages {
    pub created: Vec<Duration>,
    pub bound: Vec<Duration>,
    pub running: Vec<Duration>,
}

impl Stages {
    /// The time `fraction` of `n` pods had reached a stage (None: not that many yet).
    fn at(times: &[Duration], n: usize, fraction: f64) -> Option<Duration> {
        let mut sorted = times.to_vec();
        sorted.sort();
        let k = ((n as f64 * fraction).ceil() as usize).max(1);
        sorted.get(k - 1).copied()
    }

    /// "created / bound / Running" at half and all of `n`, in seconds.
    pub fn summary(&self, n: usize) -> String {
        let s = |times: &[Duration], f: f64| {
            Self::at(times, n, f).map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64()))
        };
        format!(
            "50 %: {} / {} / {} s; 100 %: {} / {} / {} s",
            s(&self.created, 0.5),
            s(&self.bound, 0.5),
            s(&self.running, 0.5),
            s(&self.created, 1.0),
            s(&self.bound, 1.0),
            s(&self.running, 1.0)
        )
    }
}

/// A watch over the pods `selector` picks in `pods`, started before the apply at `start`.
pub struct Ramp {
    stages: watch::Receiver<Stages>,
    task: tokio::task::JoinHandle<()>,
}

impl Ramp {
    pub fn watch(pods: Api<Pod>, selector: &str, start: Instant) -> Ramp {
        let (tx, rx) = watch::channel(Stages::default());
        let stream = watcher(pods, watcher::Config::default().labels(selector));
        let task = tokio::spawn(async move {
            // Per pod UID: whether it was seen bound and Running already.
            let mut seen: HashMap<String, (bool, bool)> = HashMap::new();
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let pod = match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                    _ => continue,
                };
                let at = start.elapsed();
                let bound = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
                let running = crate::common::pod_phase(&pod) == "Running";
                let entry = seen.entry(pod.uid().unwrap_or_default());
                let new = matches!(entry, std::collections::hash_map::Entry::Vacant(_));
                let state = entry.or_insert((false, false));
                let (was_bound, was_running) = *state;
                *state = (was_bound || bound, was_running || running);
                tx.send_modify(|s| {
                    if new {
                        s.created.push(at);
                    }
                    if bound && !was_bound {
                        s.bound.push(at);
                    }
                    if running && !was_running {
                        s.running.push(at);
                    }
                });
            }
        });
        Ramp { stages: rx, task }
    }

    /// Waits until `n` pods were seen Running; returns the stages.
    pub async fn until_running(mut self, n: usize, timeout: Duration) -> Stages {
        let reached = tokio::time::timeout(timeout, self.stages.wait_for(|s| s.running.len() >= n))
            .await
            .is_ok_and(|r| r.is_ok());
        let stages = self.stages.borrow().clone();
        self.task.abort();
        assert!(
            reached,
            "{n} pods Running not seen within {timeout:?}: {}",
            stages.summary(n)
        );
        stages
    }
}

/// The API server's `apiserver_request_total`, summed by "VERB resource[/subresource]".
pub async fn request_counts(client: &Client) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("GET /metrics request");
    let text = client
        .request_text(req)
        .await
        .expect("the API server's /metrics");
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix("=\""))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let resource = match label("subresource").as_str() {
            "" => label("resource"),
            sub => format!("{}/{sub}", label("resource")),
        };
        if resource.is_empty() {
            continue;
        }
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        // Failed requests apart: they tell retries and races from work.
        let code = label("code");
        let outcome = if code.starts_with('2') {
            String::new()
        } else {
            format!(" ({code})")
        };
        *counts
            .entry(format!("{} {resource}{outcome}", label("verb")))
            .or_insert(0.0) += value;
    }
    counts
}

/// The requests made between two `request_counts`, largest first, those of at least `min`.
pub fn request_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    min: f64,
) -> String {
    let mut delta: Vec<(&String, f64)> = after
        .iter()
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d >= min)
        .collect();
    delta.sort_by(|a, b| b.1.total_cmp(&a.1));
    delta
        .iter()
        .map(|(k, d)| format!("{k} {d:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The control plane's processes and the operator, by the name the kernel gives them (`comm`).
const PROCESSES: [&str; 6] = [
    "kube-apiserver",
    "etcd",
    "kwok",
    "kube-scheduler",
    "kube-controller",
    "stressmix-opera",
];

/// CPU seconds used so far by each process of [`PROCESSES`] (summed over processes of one name).
pub fn cpu_by_process() -> BTreeMap<&'static str, f64> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut cpu = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."; utime and stime are fields 14 and 15.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let Some(name) = PROCESSES.iter().find(|p| **p == &stat[open + 1..close]) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let used: f64 = fields[11..13]
            .iter()
            .filter_map(|v| v.parse::<f64>().ok())
            .sum();
        *cpu.entry(*name).or_insert(0.0) += used / ticks;
    }
    cpu
}

/// CPU seconds each process used between two `cpu_by_process`.
pub fn cpu_delta(before: &BTreeMap<&str, f64>, after: &BTreeMap<&str, f64>) -> String {
    after
        .iter()
        .map(|(k, v)| format!("{k} {:.1}", v - before.get(k).copied().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until no pod is being deleted anywhere: kwok keeps sending DELETEs for pods already gone
/// (404s) for a while after a namespace's pods disappear, and that work would be charged to the
/// next side measured.
pub async fn wait_deletes_quiet(client: &Client) {
    let deletes = |counts: &BTreeMap<String, f64>| -> f64 {
        counts
            .iter()
            .filter(|(k, _)| k.starts_with("DELETE pods"))
            .map(|(_, v)| v)
            .sum()
    };
    let mut last = deletes(&request_counts(client).await);
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = deletes(&request_counts(client).await);
        if now == last {
            return;
        }
        last = now;
    }
    panic!("pod deletions still going on after 120 s");
}
