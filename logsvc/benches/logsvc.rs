//! Log service benchmark (`make bench-logsvc`, or `cargo bench -p stressmix-logsvc --bench logsvc`).
//!
//! 1. Sustained ingest over HTTP on loopback into a database file on disk: several concurrent
//!    clients, each a node posting 100-container batches as fast as answers come back. Measured
//!    with `synchronous=FULL` (fsync per commit) and `NORMAL` side by side.
//! 2. The dashboard query: a 1-hour window of 100 containers at 1-second resolution (360,000
//!    readings), container samples over HTTP, at the steps Grafana sends for a 1-hour panel.
//!
//! Medians are printed as Markdown table rows for docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stressmix_api::readings::{
    ContainerReading, FieldSources, NodeReading, OomKill, OomObservation, ReadingBatch,
    ReadingSource,
};
use stressmix_logsvc::Config;
use stressmix_logsvc::config::Synchronous;
use stressmix_logsvc::http::{AppState, router};
use stressmix_logsvc::metrics::Metrics;
use stressmix_logsvc::store::Db;

const CONTAINERS: usize = 100;
const CLIENTS: usize = 8;
const INGEST_SECONDS: u64 = 10;
const ROUNDS: usize = 3;
const QUERY_RUNS: usize = 31;
const T0: u64 = 1_764_370_800_000;
/// One batch in this many carries an OOM kill (a memory pod past its limit every ~minute at 1 s).
const OOM_EVERY: u64 = 60;

/// `STRESSMIX_BENCH_USAGE_ONLY=1`: batches as agents sent them before issue 14 (no slot, pressure,
/// throttling, field sources or OOM kills), to compare this code with an older build on the same
/// work.
fn usage_only() -> bool {
    std::env::var_os("STRESSMIX_BENCH_USAGE_ONLY").is_some()
}

fn batch(node: usize, sequence: u64, ts: u64) -> ReadingBatch {
    let mut b = full_batch(node, sequence, ts);
    if usage_only() {
        let mut plain = ReadingBatch {
            field_sources: None,
            oom_kills: Vec::new(),
            containers: Vec::new(),
            ..b.clone()
        };
        plain.containers = b
            .containers
            .drain(..)
            .map(|c| ContainerReading {
                slot: None,
                cpu_pressure_some_percent: None,
                cpu_pressure_full_percent: None,
                memory_pressure_some_percent: None,
                memory_pressure_full_percent: None,
                io_pressure_some_percent: None,
                io_pressure_full_percent: None,
                cpu_throttled_periods_percent: None,
                cpu_throttled_seconds_per_sec: None,
                ..c
            })
            .collect();
        return plain;
    }
    b
}

fn full_batch(node: usize, sequence: u64, ts: u64) -> ReadingBatch {
    let containers = (0..CONTAINERS)
        .map(|i| {
            let kind = ["cpu", "memory", "io", "disk"][i % 4];
            ContainerReading {
                cgroup_id: Some(10_000 + i as u64),
                cgroup_path: format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{node:04}_{i:04}.slice/cri-containerd-{i:064x}.scope"
                ),
                container_id: Some(format!("{i:064x}")),
                pod: Some(format!("lab-{kind}-{i}")),
                pod_uid: Some(format!("00000000-0000-4000-8000-{node:04}{i:08}")),
                namespace: Some("stress".into()),
                container: Some("stress".into()),
                workload: Some(format!("lab{}", i % 5)),
                kind: Some(kind.into()),
                cpu_percent: (sequence % 100) as f64 + i as f64 / 10.0,
                cpu_percent_node: (sequence % 100) as f64 / 2.0,
                memory_bytes: 100_000_000 + sequence * 4096,
                memory_percent: 0.4,
                disk_read_bytes_per_sec: 1_048_576.0,
                disk_write_bytes_per_sec: 524_288.0 + sequence as f64,
                io_ops_per_sec: 250.0,
                slot: Some(i as u32),
                // An agent that reads PSI and cpu.stat sends these for every container.
                cpu_pressure_some_percent: Some((sequence % 50) as f64),
                cpu_pressure_full_percent: Some((sequence % 10) as f64),
                memory_pressure_some_percent: Some(1.5),
                memory_pressure_full_percent: Some(0.5),
                io_pressure_some_percent: Some(2.5),
                io_pressure_full_percent: Some(0.25),
                cpu_throttled_periods_percent: Some(40.0 + (i % 10) as f64),
                cpu_throttled_seconds_per_sec: Some(0.4),
            }
        })
        .collect();
    ReadingBatch {
        node_name: format!("bench-node-{node}"),
        boot_id: format!("7a1e0000-0000-4000-8000-{node:012}"),
        sequence,
        timestamp_ms: ts,
        source: ReadingSource::Module,
        source_reason: None,
        node: NodeReading {
            memory_total_bytes: 24 << 30,
            memory_free_bytes: 12 << 30,
            memory_available_bytes: 18 << 30,
            memory_used_bytes: 6 << 30,
            cpu_percent: 50.0,
            cpus: 2,
        },
        containers,
        field_sources: Some(FieldSources {
            usage: ReadingSource::Module,
            pressure: Some(ReadingSource::Module),
            memory_events: Some(ReadingSource::Module),
            cpu_throttling: Some(ReadingSource::Cgroupfs),
        }),
        oom_kills: if sequence % OOM_EVERY == OOM_EVERY - 1 {
            vec![OomKill {
                cgroup_path: format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{node:04}_0001.slice"
                ),
                count: 1,
                observed: OomObservation::Ancestor,
                namespace: Some("stress".into()),
                pod: Some("lab-memory-1".into()),
                pod_uid: Some(format!("00000000-0000-4000-8000-{node:04}{:08}", 1)),
                container: Some("stress".into()),
                workload: Some("lab1".into()),
                kind: Some("memory".into()),
                slot: Some(1),
            }]
        } else {
            Vec::new()
        },
    }
}

struct Server {
    url: String,
    db: Arc<Db>,
}

async fn serve(config: Config) -> Server {
    let metrics = Arc::new(Metrics::default());
    let db = Arc::new(Db::open(&config, metrics.clone()).expect("open db"));
    let state = AppState {
        db: db.clone(),
        metrics,
        config: Arc::new(config),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    Server { url, db }
}

fn bench_dir() -> std::path::PathBuf {
    let base = std::env::var("STRESSMIX_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
                .join(".cache/stressmix")
        });
    let dir = base.join("bench-logsvc");
    std::fs::create_dir_all(&dir).expect("bench dir on disk");
    dir
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Readings per second over `INGEST_SECONDS` of `CLIENTS` concurrent posting loops.
async fn ingest_rate(synchronous: Synchronous, round: usize) -> f64 {
    let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
    let mut config = Config::for_tests();
    config.db = dir.path().join("bench.db").to_string_lossy().into_owned();
    config.synchronous = synchronous;
    let server = serve(config).await;
    // Serialize once and splice in (sequence, timestamp): the benchmark measures the service,
    // not the client's JSON encoder. Each client has two templates: without and with an OOM kill.
    let split = |b: &ReadingBatch, sequence: u64| {
        let text = serde_json::to_string(b).expect("json");
        let marker = format!("\"sequence\":{sequence},\"timestamp_ms\":{T0},");
        let at = text.find(&marker).expect("field order");
        (
            text[..at].to_string(),
            text[at + marker.len()..].to_string(),
        )
    };
    let templates: Vec<[(String, String); 2]> = (0..CLIENTS)
        .map(|node| {
            let node = node + 100 * round;
            [
                split(&batch(node, 0, T0), 0),
                split(&batch(node, OOM_EVERY - 1, T0), OOM_EVERY - 1),
            ]
        })
        .collect();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(INGEST_SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (node, template) in templates.into_iter().enumerate() {
        let client = client.clone();
        let url = format!("{}/api/v1/readings", server.url);
        tasks.push(tokio::spawn(async move {
            let mut stored = 0usize;
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                let ts = T0 + sequence * 1000;
                let (head, tail) = &template[usize::from(sequence % OOM_EVERY == OOM_EVERY - 1)];
                let body = format!("{head}\"sequence\":{sequence},\"timestamp_ms\":{ts},{tail}");
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                assert!(
                    answer.status().is_success(),
                    "node {node}: {}",
                    answer.status()
                );
                stored += CONTAINERS;
                sequence += 1;
            }
            stored
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    server.db.shutdown().await;
    total as f64 / elapsed
}

/// Readings per second straight into the store (no HTTP, no JSON): the writer's own ceiling.
async fn store_rate(round: usize) -> f64 {
    let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
    let mut config = Config::for_tests();
    config.db = dir.path().join("store.db").to_string_lossy().into_owned();
    let db = Arc::new(Db::open(&config, Arc::new(Metrics::default())).expect("open db"));
    let deadline = Instant::now() + Duration::from_secs(INGEST_SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for node in 0..CLIENTS {
        let db = db.clone();
        let templates = [
            batch(node + 100 * round, 0, T0),
            batch(node + 100 * round, OOM_EVERY - 1, T0),
        ];
        tasks.push(tokio::spawn(async move {
            let mut stored = 0usize;
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                let killed = usize::from(sequence % OOM_EVERY == OOM_EVERY - 1);
                let mut b = Box::new(templates[killed].clone());
                b.sequence = sequence;
                b.timestamp_ms = T0 + sequence * 1000;
                db.ingest(b).await.expect("ingest");
                stored += CONTAINERS;
                sequence += 1;
            }
            stored
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("writer client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    db.shutdown().await;
    total as f64 / elapsed
}

async fn query_latencies() -> Vec<(String, f64, usize)> {
    let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
    let mut config = Config::for_tests();
    config.db = dir.path().join("query.db").to_string_lossy().into_owned();
    let server = serve(config).await;
    // One hour of one node with 100 containers at 1 s: 3,600 batches, 360,000 readings.
    for s in 0..3600u64 {
        server
            .db
            .ingest(Box::new(batch(0, s, T0 + s * 1000)))
            .await
            .expect("ingest");
    }
    let client = reqwest::Client::new();
    let to = T0 + 3_599_999;
    let mut results = Vec::new();
    for (label, extra) in [
        (
            "dashboard panel at a 1 h range: `step_ms=5000&metric=cpu_percent&labels=series`",
            "step_ms=5000&metric=cpu_percent&labels=series",
        ),
        (
            "wide panel: `step_ms=2000&metric=cpu_percent&labels=series`",
            "step_ms=2000&metric=cpu_percent&labels=series",
        ),
        (
            "most points allowed: `step_ms=1000` (raised to 1800) `&metric=cpu_percent&labels=series`",
            "step_ms=1000&metric=cpu_percent&labels=series",
        ),
        (
            "`step_ms=5000&metric=cpu_percent` (all 7 label columns)",
            "step_ms=5000&metric=cpu_percent",
        ),
        (
            "`step_ms=5000` (all 7 metrics, all 7 labels)",
            "step_ms=5000",
        ),
        (
            "`step_ms=2000` (all 7 metrics, all 7 labels)",
            "step_ms=2000",
        ),
        (
            "`step_ms=5000&kind=cpu` (25 containers, all columns)",
            "step_ms=5000&kind=cpu",
        ),
        (
            "pressure panel: `step_ms=5000&metric=cpu_pressure_some_percent&labels=series`",
            "step_ms=5000&metric=cpu_pressure_some_percent&labels=series",
        ),
    ] {
        let url = format!(
            "{}/api/v1/query/containers?from={T0}&to={to}&{extra}",
            server.url
        );
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..QUERY_RUNS {
            let started = Instant::now();
            let body = client
                .get(&url)
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            rows = serde_json::from_slice::<Vec<serde_json::Value>>(&body)
                .expect("rows")
                .len();
        }
        results.push((label.to_string(), median(times), rows));
    }
    server.db.shutdown().await;
    results
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if std::env::var_os("STRESSMIX_BENCH_QUERIES_ONLY").is_none() {
            ingest_table().await;
        }
        println!("| query `/api/v1/query/containers`, 1 h x 100 containers x 1 s (360,000 readings), median of {QUERY_RUNS} | ms | rows |");
        println!("|---|---|---|");
        for (label, ms, rows) in query_latencies().await {
            println!("| {label} | {ms:.1} | {rows} |");
        }
    });
}

/// The ingest rows (`STRESSMIX_BENCH_QUERIES_ONLY=1` skips them).
async fn ingest_table() {
    println!(
        "| ingest ({CLIENTS} clients, {CONTAINERS} containers/batch, {INGEST_SECONDS} s, median of {ROUNDS}) | readings/s |"
    );
    println!("|---|---|");
    for (name, sync) in [
        (
            "synchronous=FULL (fsync every commit; default)",
            Synchronous::Full,
        ),
        (
            "synchronous=NORMAL (WAL; fsync at checkpoints)",
            Synchronous::Normal,
        ),
    ] {
        let mut rates = Vec::new();
        for round in 0..ROUNDS {
            rates.push(ingest_rate(sync, round).await);
        }
        print_rate_row(name, rates);
    }
    let mut rates = Vec::new();
    for round in 0..ROUNDS {
        rates.push(store_rate(round).await);
    }
    print_rate_row("store only (no HTTP/JSON), synchronous=FULL", rates);
    println!();
}

/// One ingest row: the median of the rounds, then every round.
fn print_rate_row(name: &str, rates: Vec<f64>) {
    let all: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "| {name} | {:.0} (runs: {}) |",
        median(rates),
        all.join(", ")
    );
}
