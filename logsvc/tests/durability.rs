//! Durability against the real binary: concurrent clients ingest, the process is SIGKILLed (or
//! SIGTERMed) mid-ingest, restarted on the same database, and every acknowledged batch is there
//! exactly once.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{batch, container};

const CLIENTS: usize = 4;
const CONTAINERS: usize = 20;
/// Batch timestamps start an hour ago: inside the service's raw retention, so its startup
/// retention pass keeps them.
fn t0() -> u64 {
    static T0: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        // Whole seconds, so 1 s query buckets start exactly at batch timestamps.
        now - now % 1000 - 3_600_000
    })
}

/// Kills the service if a test fails half way, so no process outlives the test.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn start(db: &Path, port: u16) -> Service {
    Service(
        Command::new(env!("CARGO_BIN_EXE_stressmix-logsvc"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--db")
            .arg(db)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn stressmix-logsvc"),
    )
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(answer) = client.get(format!("{base}/readyz")).send().await
            && answer.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "service not ready within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn boot(client: usize) -> String {
    format!("d0000000-0000-4000-8000-{client:012}")
}

fn client_batch(client: usize, sequence: u64) -> stressmix_api::readings::ReadingBatch {
    let containers = (0..CONTAINERS)
        .map(|i| {
            container(
                ["cpu", "memory", "io", "disk"][i % 4],
                i,
                sequence as f64 % 100.0,
            )
        })
        .collect();
    batch(
        &format!("node-{client}"),
        &boot(client),
        sequence,
        t0() + sequence * 1000,
        containers,
    )
}

/// Posts batches 0, 1, 2, ... until the service stops answering; returns the acknowledged ones.
async fn ingest_until_gone(client: usize, base: String) -> BTreeSet<u64> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut acknowledged = BTreeSet::new();
    for sequence in 0.. {
        let body = serde_json::to_vec(&client_batch(client, sequence)).expect("json");
        let answer = http
            .post(format!("{base}/api/v1/readings"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match answer {
            Ok(answer) if answer.status().is_success() => {
                let value: serde_json::Value = answer.json().await.expect("json answer");
                assert_eq!(value["status"], "stored", "first post of {sequence}");
                acknowledged.insert(sequence);
            }
            // 503 while shutting down, or connection errors once killed: not acknowledged.
            Ok(answer) => assert_eq!(answer.status(), 503, "unexpected status"),
            Err(_) => break,
        }
    }
    acknowledged
}

async fn run(kill: fn(&mut Child)) -> (Vec<BTreeSet<u64>>, std::process::ExitStatus) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("logsvc.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut child = start(&db, port);
    wait_ready(&http, &base).await;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(ingest_until_gone(c, base.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kill(&mut child.0);
    let status = child.0.wait().expect("wait");
    let mut acknowledged = Vec::new();
    for c in clients {
        acknowledged.push(c.await.expect("client task"));
    }
    for (c, acks) in acknowledged.iter().enumerate() {
        assert!(
            acks.len() >= 5,
            "client {c} got only {} acknowledgements",
            acks.len()
        );
    }

    // Restart on the same file and check through the service and in the file.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = start(&db, port);
    wait_ready(&http, &base).await;
    for (c, acks) in acknowledged.iter().enumerate() {
        // Re-sending an acknowledged batch must be recognised as already stored.
        for &sequence in acks.iter().step_by(7).chain(acks.last()) {
            let answer = http
                .post(format!("{base}/api/v1/readings"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&client_batch(c, sequence)).expect("json"))
                .send()
                .await
                .expect("post");
            let value: serde_json::Value = answer.json().await.expect("json");
            assert_eq!(value["status"], "duplicate", "client {c} batch {sequence}");
        }
    }
    drop(child);

    let conn = rusqlite::Connection::open(&db).expect("open");
    for (c, acks) in acknowledged.iter().enumerate() {
        let boot_id = boot(c);
        for &sequence in acks {
            let batches: i64 = conn
                .query_row(
                    "SELECT count(*) FROM batches JOIN boots ON boots.id = batches.boot
                     WHERE boots.boot_id = ?1 AND sequence = ?2",
                    rusqlite::params![boot_id, sequence as i64],
                    |r| r.get(0),
                )
                .expect("count batches");
            assert_eq!(batches, 1, "client {c} batch {sequence} stored once");
        }
    }
    // Every reading of every acknowledged batch, through the query API of a fresh start.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = start(&db, port);
    wait_ready(&http, &base).await;
    for (c, acks) in acknowledged.iter().enumerate() {
        let (Some(first), Some(last)) = (acks.first(), acks.last()) else {
            continue;
        };
        let url = format!(
            "{base}/api/v1/query/containers?node=node-{c}&from={}&to={}&step_ms=1000&metric=cpu_percent&labels=series",
            t0() + first * 1000,
            t0() + last * 1000
        );
        let rows: Vec<serde_json::Value> = http
            .get(url)
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("rows");
        for &sequence in acks {
            let ts = t0() + sequence * 1000;
            let at: Vec<&serde_json::Value> = rows.iter().filter(|r| r["time"] == ts).collect();
            assert_eq!(
                at.len(),
                CONTAINERS,
                "client {c} batch {sequence}: every reading once"
            );
            assert!(at.iter().all(|r| r["value"] == (sequence % 100) as f64));
        }
    }
    drop(child);
    (acknowledged, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_ingest_loses_no_acknowledged_batch() {
    let (acknowledged, status) = run(|child| child.kill().expect("SIGKILL")).await;
    assert!(!status.success(), "killed, not exited: {status:?}");
    let total: usize = acknowledged.iter().map(BTreeSet::len).sum();
    println!("SIGKILL: {total} acknowledged batches all present exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_writes_and_exits_cleanly() {
    let (acknowledged, status) = run(|child| {
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
    })
    .await;
    assert!(status.success(), "graceful exit: {status:?}");
    let total: usize = acknowledged.iter().map(BTreeSet::len).sum();
    println!("SIGTERM: {total} acknowledged batches all present exactly once");
}
