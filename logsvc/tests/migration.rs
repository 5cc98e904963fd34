//! A database written by the schema before pressure, throttling and OOM kills (commit 24b869a,
//! `fixtures/schema-24b869a.sql`) opens, keeps answering, and takes the new fields.

mod common;

use axum::http::StatusCode;
use common::*;
use rusqlite::{Connection, params};
use serde_json::json;
use stressmix_logsvc::Config;

const OLD_SCHEMA: &str = include_str!("fixtures/schema-24b869a.sql");

/// The old packing: series id, then the seven usage values, little endian.
fn old_blob(series_id: i64, values: [f64; 7]) -> Vec<u8> {
    let mut out = series_id.to_le_bytes().to_vec();
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// One series with a rolled-up minute at T0 and a raw reading at T0 + 60 s, as the old service
/// wrote them.
fn write_old_database(path: &str) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(OLD_SCHEMA).expect("old schema");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
    )
    .expect("meta");
    let t0 = T0 as i64;
    conn.execute_batch(&format!(
        "INSERT INTO boots (id, boot_id) VALUES (1, '{BOOT}');
         INSERT INTO nodes (id, name) VALUES (1, 'node-a');
         INSERT INTO batches VALUES (1, 0, {t}, 1, {t}, 1, 'module', NULL);
         INSERT INTO series (id, node_id, cgroup_path, container_id, pod_uid, pod, namespace,
             container, workload, kind, name, first_ms, last_ms)
             VALUES (1, 1, '/kubepods/pod-cpu-0/c0', '{cid:064x}', '00000000-0000-4000-8000-000000000000',
                     'lab-cpu-0', 'stress', 'stress', 'lab', 'cpu', 'stress/lab-cpu-0/stress', {t0}, {t});
         INSERT INTO samples_1m VALUES ({t0}, 1, 2, 40.0, 20.0, 2097152.0, 1.0, 0.0, 0.0, 20.0);
         INSERT INTO meta VALUES ('rollup_watermark', {t});",
        t = t0 + 60_000,
        cid = 1,
    ))
    .expect("old rows");
    conn.execute(
        "INSERT INTO samples (ts, node_id, boot, readings) VALUES (?1, 1, 1, ?2)",
        params![
            t0 + 60_000,
            old_blob(1, [30.0, 15.0, 1_048_576.0, 0.5, 0.0, 0.0, 10.0])
        ],
    )
    .expect("old raw reading");
}

#[tokio::test]
async fn a_database_of_the_previous_schema_opens_answers_and_takes_the_new_fields() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("old.db").to_string_lossy().into_owned();
    write_old_database(&path);
    let mut config = Config::for_tests();
    config.db = path;
    let app = app(config);
    let to = T0 + 179_999;
    let usage = get(
        &app,
        &format!("/api/v1/query/containers?from={T0}&to={to}&step_ms=60000&metric=cpu_percent&labels=series"),
    )
    .await
    .rows();
    assert_eq!(
        usage,
        vec![
            json!({"time": T0, "series": "stress/lab-cpu-0/stress", "value": 20.0}),
            json!({"time": T0 + 60_000, "series": "stress/lab-cpu-0/stress", "value": 30.0}),
        ]
    );

    // A new agent's batch in the third minute, same pod, under pressure and with a kill.
    let mut reading = container("cpu", 0, 50.0);
    reading.cpu_pressure_some_percent = Some(12.5);
    reading.slot = Some(0);
    let mut b = batch("node-a", BOOT, 1, T0 + 120_000, vec![reading]);
    b.oom_kills = vec![stressmix_api::readings::OomKill {
        cgroup_path: "/kubepods/pod-cpu-0/c0".into(),
        count: 1,
        observed: stressmix_api::readings::OomObservation::Cgroup,
        namespace: Some("stress".into()),
        pod: Some("lab-cpu-0".into()),
        pod_uid: None,
        container: Some("stress".into()),
        workload: Some("lab".into()),
        kind: Some("cpu".into()),
        slot: Some(0),
    }];
    let answer = post_batch(&app, &b).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // A retried old batch is still a duplicate.
    let answer = post_batch(&app, &batch("node-a", BOOT, 0, T0 + 60_000, vec![])).await;
    assert_eq!(answer.json()["status"], "duplicate");

    let pressure = format!(
        "/api/v1/query/containers?from={T0}&to={to}&step_ms=60000&metric=cpu_pressure_some_percent&labels=series"
    );
    // The minutes written by the old schema have no pressure: no row there, the new one has.
    let expected =
        vec![json!({"time": T0 + 120_000, "series": "stress/lab-cpu-0/stress", "value": 12.5})];
    assert_eq!(get(&app, &pressure).await.rows(), expected);
    let kills = get(&app, &format!("/api/v1/query/oom-kills?from={T0}&to={to}"))
        .await
        .rows();
    assert_eq!(
        kills,
        vec![json!({"workload": "lab", "kind": "cpu", "slot": 0, "kills": 1})]
    );

    // Rolling up everything merges into the old minute rows (their new columns NULL) exactly.
    retention_after(&app, 2).await;
    assert_eq!(get(&app, &pressure).await.rows(), expected);
    app.db.shutdown().await;
}
