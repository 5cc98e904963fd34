//! The log service goes away for 60 s while two agents keep collecting:
//! - one with a buffer larger than the outage: every sequence number is stored exactly once;
//! - one with its buffer forced small: the sequences missing from the store are exactly the drops
//!   the agent counted (and logged, one line each), and they are the oldest ones.
//!
//! Real binaries, loopback only. Long: runs under `--features slow-tests` (`make test-agent`).
#![cfg(feature = "slow-tests")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const INTERVAL_MS: u64 = 200;
const OUTAGE: Duration = Duration::from_secs(60);
const SMALL_BUFFER: u64 = 25;

fn start_agent(node: &FakeNode, logsvc_port: u16, metrics_port: u16, buffer: u64) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stressmix-agent"));
    cmd.args([
        "--source",
        "cgroupfs",
        "--no-kubernetes",
        "--log-format",
        "json",
    ])
    .arg("--cgroup-root")
    .arg(node.cgroup_root())
    .arg("--proc-root")
    .arg(node.proc_root())
    .args(["--node-name", "outage-node"])
    .arg(format!("--interval={INTERVAL_MS}ms"))
    .arg(format!("--logsvc-url=http://127.0.0.1:{logsvc_port}"))
    .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
    .arg(format!("--buffer-batches={buffer}"))
    .args([
        "--backoff-initial=100ms",
        "--backoff-max=2s",
        "--request-timeout=2s",
    ])
    .args(["--shutdown-grace=30s"])
    .env("RUST_LOG", "info");
    let agent = Proc::spawn("agent", cmd);
    wait_http(
        &format!("http://127.0.0.1:{metrics_port}/metrics"),
        Duration::from_secs(30),
    );
    agent
}

fn boot_id(agent: &Proc) -> String {
    let started = agent.json_logs("agent started");
    started
        .first()
        .and_then(|l| l["fields"]["boot_id"].as_str())
        .expect("agent logged its boot id")
        .to_owned()
}

struct Stopped {
    built: u64,
    sent: u64,
    dropped_buffer_full: u64,
    dropped_shutdown: u64,
    dropped_rejected: u64,
    drop_log_lines: u64,
}

fn stop_agent(agent: &mut Proc) -> Stopped {
    let status = agent.terminate(Duration::from_secs(60));
    assert!(status.success(), "agent exit status {status}");
    let stopped = agent.json_logs("agent stopped");
    let line = stopped.first().expect("agent logged its final counts");
    let field = |name: &str| {
        line["fields"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    Stopped {
        built: field("built"),
        sent: field("sent"),
        dropped_buffer_full: field("dropped_buffer_full"),
        dropped_shutdown: field("dropped_shutdown"),
        dropped_rejected: field("dropped_rejected"),
        drop_log_lines: agent
            .json_logs("buffer full: dropped the oldest batch")
            .len() as u64,
    }
}

fn wait_until_drained(metrics_port: u16, limit: Duration) {
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(text) = get(&url)
            && metric(&text, "stressmix_agent_buffered_batches") == Some(0.0)
            && metric(&text, "stressmix_agent_batches_sent_total").is_some_and(|n| n > 0.0)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("agent on :{metrics_port} did not drain its buffer within {limit:?}");
}

#[test]
fn log_service_outage_loses_nothing_and_small_buffer_drops_are_exactly_counted() {
    let Some(logsvc_bin) = require_logsvc() else {
        return;
    };
    let node = FakeNode::new(5);
    let db_dir = tempfile::tempdir().expect("tmp");
    let db = db_dir.path().join("readings.db");
    let port = free_port();
    let mut logsvc = start_logsvc(&logsvc_bin, port, &db);

    let (big_port, small_port) = (free_port(), free_port());
    let mut big = start_agent(&node, port, big_port, 1000);
    let mut small = start_agent(&node, port, small_port, SMALL_BUFFER);
    std::thread::sleep(Duration::from_secs(3));

    let status = logsvc.terminate(Duration::from_secs(30));
    assert!(status.success(), "logsvc exit {status}");
    eprintln!("log service stopped; outage of {OUTAGE:?}");
    std::thread::sleep(OUTAGE);

    // While it is down: the small agent must have filled its buffer and dropped.
    let text = get(&format!("http://127.0.0.1:{small_port}/metrics")).expect("small agent metrics");
    assert_eq!(
        metric(&text, "stressmix_agent_buffered_batches"),
        Some(SMALL_BUFFER as f64)
    );
    assert!(
        metric(&text, "stressmix_agent_send_retries_total").is_some_and(|n| n > 5.0),
        "{text}"
    );

    let mut logsvc = start_logsvc(&logsvc_bin, port, &db);
    eprintln!("log service restarted");
    wait_until_drained(big_port, Duration::from_secs(60));
    wait_until_drained(small_port, Duration::from_secs(60));
    let big_id = boot_id(&big);
    let small_id = boot_id(&small);
    let big_end = stop_agent(&mut big);
    let small_end = stop_agent(&mut small);
    let status = logsvc.terminate(Duration::from_secs(30));
    assert!(status.success(), "logsvc exit {status}");

    let stored = stored_sequences(Path::new(&db));
    let outage_batches = OUTAGE.as_millis() as u64 / INTERVAL_MS;

    // Big buffer: 0..built, each exactly once, nothing dropped.
    let big_seen = stored.get(&big_id).expect("big agent's batches stored");
    assert!(
        big_end.built > outage_batches,
        "built {} batches",
        big_end.built
    );
    assert_eq!(
        big_seen.keys().copied().collect::<Vec<_>>(),
        (0..big_end.built).collect::<Vec<_>>(),
        "every sequence number stored"
    );
    assert!(big_seen.values().all(|&n| n == 1), "each exactly once");
    assert_eq!(big_end.sent, big_end.built);
    assert_eq!(
        big_end.dropped_buffer_full + big_end.dropped_shutdown + big_end.dropped_rejected,
        0
    );

    // Small buffer: missing = counted drops, all of them logged, the oldest of the outage.
    let small_seen = stored.get(&small_id).expect("small agent's batches stored");
    assert!(small_seen.values().all(|&n| n == 1), "each exactly once");
    let all: BTreeSet<u64> = (0..small_end.built).collect();
    let seen: BTreeSet<u64> = small_seen.keys().copied().collect();
    assert!(seen.is_subset(&all), "nothing stored that was not built");
    let missing: Vec<u64> = all.difference(&seen).copied().collect();
    assert!(
        small_end.dropped_buffer_full > outage_batches / 2,
        "drops: {}",
        small_end.dropped_buffer_full
    );
    assert_eq!(
        missing.len() as u64,
        small_end.dropped_buffer_full,
        "missing = counted drops"
    );
    assert_eq!(
        small_end.drop_log_lines, small_end.dropped_buffer_full,
        "every drop logged"
    );
    assert_eq!(small_end.dropped_shutdown + small_end.dropped_rejected, 0);
    assert_eq!(
        small_end.sent + small_end.dropped_buffer_full,
        small_end.built
    );
    // Oldest dropped first: the gap is one contiguous run, and the newest SMALL_BUFFER batches of the
    // outage survived it.
    let (first, last) = (missing[0], missing[missing.len() - 1]);
    assert_eq!(
        last - first + 1,
        missing.len() as u64,
        "one contiguous gap: {missing:?}"
    );
    assert!((last + 1..last + 1 + SMALL_BUFFER).all(|s| seen.contains(&s)));
    eprintln!(
        "big: built {} stored {}; small: built {} stored {} dropped {} (gap {first}..={last})",
        big_end.built,
        big_seen.len(),
        small_end.built,
        small_seen.len(),
        small_end.dropped_buffer_full
    );
}
