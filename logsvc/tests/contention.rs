//! Pressure, throttling and OOM kills (issue 14, part 4): stored, queried with the same filters
//! and downsampling as usage, in the snapshot and `/metrics`, and kept by retention.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use stressmix_api::readings::{
    ContainerReading, FieldSources, OomKill, OomObservation, ReadingSource,
};
use stressmix_logsvc::Config;

/// A cpu pod under pressure (values change every second), a memory pod whose agent sent no
/// pressure or throttling (an old agent, or PSI off).
fn contended(s: u64) -> Vec<ContainerReading> {
    let mut cpu = container("cpu", 0, 50.0);
    cpu.slot = Some(0);
    cpu.cpu_pressure_some_percent = Some(10.0 * (s % 4) as f64); // 0,10,20,30
    cpu.cpu_pressure_full_percent = Some(1.0);
    cpu.memory_pressure_some_percent = Some(2.0);
    cpu.memory_pressure_full_percent = Some(0.5);
    cpu.io_pressure_some_percent = Some(3.0);
    cpu.io_pressure_full_percent = Some(0.25);
    cpu.cpu_throttled_periods_percent = Some(80.0);
    cpu.cpu_throttled_seconds_per_sec = Some(0.9);
    // Throttling is unknown in odd seconds (no period with runnable tasks).
    if s % 2 == 1 {
        cpu.cpu_throttled_periods_percent = None;
    }
    let mut memory = container("memory", 1, 5.0);
    memory.slot = Some(1);
    vec![cpu, memory]
}

fn kill(kind: &str, slot: u32, pod: &str, count: u64) -> OomKill {
    OomKill {
        cgroup_path: format!("/kubepods/{pod}/c"),
        count,
        observed: OomObservation::Ancestor,
        namespace: Some("stress".into()),
        pod: Some(pod.into()),
        pod_uid: None,
        container: Some("stress".into()),
        workload: Some("lab".into()),
        kind: Some(kind.into()),
        slot: Some(slot),
    }
}

async fn ingest(app: &App, seconds: u64) {
    for s in 0..seconds {
        let mut b = batch("node-a", BOOT, s, T0 + s * 1000, contended(s));
        b.field_sources = Some(FieldSources {
            usage: ReadingSource::Module,
            pressure: Some(ReadingSource::Module),
            memory_events: Some(ReadingSource::Module),
            cpu_throttling: Some(ReadingSource::Cgroupfs),
        });
        // The memory slot's pod is killed twice, replaced each time under another name.
        if s == 10 || s == 70 {
            b.oom_kills = vec![kill("memory", 1, &format!("lab-memory-1-{s}"), 1)];
        }
        let answer = post_batch(app, &b).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
}

async fn contention_rows(app: &App) -> i64 {
    app.db
        .read(|conn| {
            Ok(conn.query_row("SELECT count(*) FROM samples_contention", [], |r| r.get(0))?)
        })
        .await
        .expect("count")
}

fn metric_query(metric: &str, to: u64, step: u64) -> String {
    format!(
        "/api/v1/query/containers?from={T0}&to={to}&step_ms={step}&metric={metric}&labels=series"
    )
}

#[tokio::test]
async fn pressure_and_throttling_are_averaged_per_bucket_and_absent_without_values() {
    let app = app(Config::for_tests());
    ingest(&app, 8).await;
    let rows = get(
        &app,
        &metric_query("cpu_pressure_some_percent", T0 + 7999, 4000),
    )
    .await
    .rows();
    assert_eq!(
        rows,
        vec![
            json!({"time": T0, "series": "stress/lab-cpu-0/stress", "value": 15.0}),
            json!({"time": T0 + 4000, "series": "stress/lab-cpu-0/stress", "value": 15.0}),
        ]
    );
    // A series without the value in a bucket has no point there (not a null one): a dashboard's
    // series are the containers that have it.
    // A mean over the readings that had the value, not over the bucket's readings.
    let rows = get(
        &app,
        &format!(
            "{}&kind=cpu",
            metric_query("cpu_throttled_periods_percent", T0 + 7999, 4000)
        ),
    )
    .await
    .rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["value"], 80.0);

    // Without `metric`, the usage columns exactly as before: no pressure column.
    let rows = get(
        &app,
        &format!(
            "/api/v1/query/containers?from={T0}&to={}&step_ms=4000",
            T0 + 7999
        ),
    )
    .await
    .rows();
    assert!(rows[0].get("cpu_percent").is_some());
    assert!(
        rows[0].get("cpu_pressure_some_percent").is_none(),
        "{}",
        rows[0]
    );

    // The snapshot has every metric; absent ones are null.
    let snapshot = get(&app, "/api/v1/snapshot").await.rows();
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot[0]["cpu_pressure_some_percent"], 30.0);
    assert_eq!(snapshot[0]["cpu_throttled_periods_percent"], json!(null));
    assert_eq!(snapshot[0]["cpu_throttled_seconds_per_sec"], 0.9);
    assert_eq!(snapshot[1]["io_pressure_full_percent"], json!(null));

    let text = get(&app, "/metrics").await.text();
    assert!(
        text.contains("stressmix_container_cpu_pressure_some_percent{")
            && text.contains("stressmix_container_cpu_throttled_seconds_per_second{"),
        "{text}"
    );
    // No fake zero for the container whose agent sent nothing.
    assert!(
        !text.lines().any(
            |l| l.starts_with("stressmix_container_io_pressure_some_percent")
                && l.contains("lab-memory-1")
        ),
        "{text}"
    );
}

#[tokio::test]
async fn rollups_keep_the_means_of_values_some_readings_lack() {
    let app = app(Config::for_tests());
    ingest(&app, 120).await;
    let to = T0 + 119_999;
    let metrics = [
        "cpu_pressure_some_percent",
        "cpu_throttled_periods_percent",
        "io_pressure_full_percent",
    ];
    let mut before = Vec::new();
    for metric in metrics {
        before.push(get(&app, &metric_query(metric, to, 60_000)).await.rows());
    }
    assert_eq!(contention_rows(&app).await, 120);
    let report = retention_after(&app, 2).await;
    assert_eq!(report.raw_rows_rolled_up, 240);
    assert_eq!(
        contention_rows(&app).await,
        0,
        "the contention of rolled-up batches goes with them"
    );
    for (metric, before) in metrics.iter().zip(before) {
        let after = get(&app, &metric_query(metric, to, 60_000)).await.rows();
        assert_eq!(after, before, "{metric}");
    }
    assert_eq!(
        get(
            &app,
            &metric_query("cpu_throttled_periods_percent", to, 60_000)
        )
        .await
        .rows()[0]["value"],
        80.0
    );
    // Events outlive the raw rows, as long as the rollups.
    let kills = get(&app, &format!("/api/v1/events/oom-kills?from={T0}&to={to}"))
        .await
        .rows();
    assert_eq!(kills.len(), 2);
    let report = retention_after(&app, 40).await;
    assert_eq!(report.oom_kills_deleted, 2);
}

#[tokio::test]
async fn oom_kills_are_listed_as_events_and_counted_per_slot() {
    let app = app(Config::for_tests());
    ingest(&app, 80).await;
    let to = T0 + 79_999;
    let kills = get(&app, &format!("/api/v1/events/oom-kills?from={T0}&to={to}")).await;
    assert_eq!(kills.status, StatusCode::OK);
    assert_eq!(
        kills.rows()[0],
        json!({
            "time": T0 + 10_000, "node": "node-a", "namespace": "stress", "pod": "lab-memory-1-10",
            "container": "stress", "workload": "lab", "kind": "memory", "observed": "ancestor",
            "cgroup_path": "/kubepods/lab-memory-1-10/c", "slot": 1, "count": 1
        })
    );
    assert_eq!(kills.rows()[1]["pod"], "lab-memory-1-70");
    // Filters: time, kind, workload, namespace ($__all means any).
    for (query, expected) in [
        (format!("from={T0}&to={}", T0 + 20_000), 1),
        (format!("from={T0}&to={to}&kind=cpu"), 0),
        (
            format!("from={T0}&to={to}&kind=memory,cpu&workload=$__all"),
            2,
        ),
        (format!("from={T0}&to={to}&workload=other"), 0),
        (format!("from={T0}&to={to}&namespace=stress"), 2),
    ] {
        let rows = get(&app, &format!("/api/v1/events/oom-kills?{query}"))
            .await
            .rows();
        assert_eq!(rows.len(), expected, "{query}");
    }
    let counts = get(&app, &format!("/api/v1/query/oom-kills?from={T0}&to={to}"))
        .await
        .rows();
    assert_eq!(
        counts,
        vec![json!({"workload": "lab", "kind": "memory", "slot": 1, "kills": 2})]
    );
    let answer = get(&app, "/api/v1/query/oom-kills?from=5&to=4").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["field"], "from");

    let text = get(&app, "/metrics").await.text();
    assert!(
        text.contains(
            "stressmix_oom_kills_total{node=\"node-a\",namespace=\"stress\",workload=\"lab\",kind=\"memory\",slot=\"1\"} 2"
        ),
        "{text}"
    );
    // The batch's field sources and the pods' slots are stored.
    let (sources, slots): (String, i64) = app
        .db
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT (SELECT field_sources FROM batches LIMIT 1),
                        (SELECT count(*) FROM series WHERE slot IS NOT NULL)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
        .expect("read");
    let sources: serde_json::Value = serde_json::from_str(&sources).expect("json");
    assert_eq!(sources["cpu_throttling"], "cgroupfs");
    assert_eq!(slots, 2);
}

#[tokio::test]
async fn a_bad_oom_kill_entry_is_400_naming_the_field() {
    let app = app(Config::for_tests());
    let mut b = batch("node-a", BOOT, 0, T0, contended(0));
    b.oom_kills = vec![kill("memory", 1, "p", 1), kill("memory", 1, "q", 0)];
    let answer = post_batch(&app, &b).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["field"], "oom_kills[1].count");
    assert_eq!(answer.json()["code"], "bad_request");

    let mut value = serde_json::to_value(&b).expect("json");
    value["oom_kills"][1]["count"] = json!(1);
    value["oom_kills"][0]["observed"] = json!("sideways");
    let answer = post_json(&app, value.to_string()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["field"], "oom_kills[0].observed");

    value["oom_kills"][0]["observed"] = json!("cgroup");
    value["containers"][0]["io_pressure_some_percent"] = json!(-1.0);
    let answer = post_json(&app, value.to_string()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json()["field"],
        "containers[0].io_pressure_some_percent"
    );
    // Nothing of the refused batches was stored.
    let kills = get(&app, &format!("/api/v1/events/oom-kills?from={T0}&to={T0}"))
        .await
        .rows();
    assert!(kills.is_empty());
}

/// Two batches of one node and boot at the same instant (another sequence): the later one's
/// readings stand, contention included, also when it carried none.
#[tokio::test]
async fn a_batch_taking_the_place_of_another_takes_its_contention_too() {
    let app = app(Config::for_tests());
    let first = batch("node-a", BOOT, 0, T0, contended(1));
    assert_eq!(post_batch(&app, &first).await.status, StatusCode::OK);
    let snapshot = get(&app, "/api/v1/snapshot").await.rows();
    assert_eq!(snapshot[0]["cpu_pressure_some_percent"], 10.0);

    let plain = batch("node-a", BOOT, 1, T0, vec![container("cpu", 0, 50.0)]);
    assert_eq!(post_batch(&app, &plain).await.status, StatusCode::OK);
    let snapshot = get(&app, "/api/v1/snapshot").await.rows();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0]["cpu_pressure_some_percent"], json!(null));
    assert_eq!(contention_rows(&app).await, 0);
}
