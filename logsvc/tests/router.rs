//! Router tests: every endpoint and every error class, against an in-memory database.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::json;
use stressmix_logsvc::Config;
use stressmix_logsvc::http::openapi;
use stressmix_logsvc::http::routes;
use stressmix_logsvc::store::RetentionPolicy;

fn example_value() -> serde_json::Value {
    serde_json::from_str(EXAMPLE).expect("example")
}

#[tokio::test]
async fn stores_a_batch_once_and_reports_duplicates() {
    let app = app(Config::for_tests());
    let first = post_json(&app, EXAMPLE).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.json()["status"], "stored");
    assert_eq!(first.json()["readings"], 3);
    let again = post_json(&app, EXAMPLE).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["status"], "duplicate");
    // Stored once: the snapshot holds one row per container, not two.
    let snap = get(&app, "/api/v1/snapshot").await;
    assert_eq!(snap.status, StatusCode::OK);
    assert_eq!(snap.rows().len(), 3);
}

#[tokio::test]
async fn stores_why_the_agent_read_its_source() {
    let app = app(Config::for_tests());
    let mut batch = example_value();
    batch["source"] = json!("cgroupfs");
    batch["source_reason"] = json!("no-headers: no kernel headers for 6.1.0-57-amd64");
    let stored = post_json(&app, batch.to_string()).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text());
    let rows = app
        .db
        .read(|conn| {
            let mut q = conn.prepare("SELECT source, source_reason FROM batches")?;
            let rows = q
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
        .expect("read batches");
    assert_eq!(
        rows,
        vec![(
            "cgroupfs".to_owned(),
            Some("no-headers: no kernel headers for 6.1.0-57-amd64".to_owned())
        )]
    );
}

#[tokio::test]
async fn wrong_content_type_is_415_json() {
    let app = app(Config::for_tests());
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = Request::post("/api/v1/readings");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let answer = call(&app, request.body(Body::from(EXAMPLE)).expect("req")).await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(answer.content_type.starts_with("application/json"));
        assert!(
            answer.json()["error"]
                .as_str()
                .expect("error")
                .contains("application/json")
        );
    }
    // Parameters on the media type are fine.
    let answer = call(
        &app,
        Request::post("/api/v1/readings")
            .header("content-type", "Application/JSON; charset=utf-8")
            .body(Body::from(EXAMPLE))
            .expect("req"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test]
async fn oversized_bodies_are_413_json() {
    let mut config = Config::for_tests();
    config.max_body_bytes = 1024;
    let app = app(config);
    // Declared length over the limit.
    let big = vec![b' '; 4096];
    let answer = post_json(&app, big.clone()).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        answer.json()["error"]
            .as_str()
            .expect("error")
            .contains("1024")
    );
    // No declared length (streamed): the limit still holds.
    let stream = futures_stream(big);
    let answer = call(
        &app,
        Request::post("/api/v1/readings")
            .header("content-type", "application/json")
            .body(stream)
            .expect("req"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// A body with no declared length, sent in chunks.
fn futures_stream(bytes: Vec<u8>) -> Body {
    let (mut tx, body) = http_body_util::channel::Channel::<axum::body::Bytes>::new(4);
    tokio::spawn(async move {
        for chunk in bytes.chunks(100) {
            if tx
                .send_data(axum::body::Bytes::copy_from_slice(chunk))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    Body::new(body)
}

#[tokio::test]
async fn bad_json_and_invalid_fields_are_400_naming_the_field() {
    let app = app(Config::for_tests());
    let answer = post_json(&app, "{not json").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.json()["error"]
            .as_str()
            .expect("error")
            .contains("JSON"),
        "{}",
        answer.text()
    );

    let mut value = example_value();
    value["containers"][1]["cpu_percent"] = json!(-3.0);
    let answer = post_json(&app, value.to_string()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["field"], "containers[1].cpu_percent");

    let mut value = example_value();
    value["containers"][2]["memory_bytes"] = json!("lots");
    let answer = post_json(&app, value.to_string()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["field"], "containers[2].memory_bytes");

    let mut value = example_value();
    value["node"].as_object_mut().expect("node").remove("cpus");
    let answer = post_json(&app, value.to_string()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["field"], "node");
    assert!(
        answer.json()["error"]
            .as_str()
            .expect("error")
            .contains("cpus")
    );

    let mut value = example_value();
    value["source"] = json!("guess");
    let answer = post_json(&app, value.to_string()).await;
    assert_eq!(answer.json()["field"], "source");

    let mut value = example_value();
    value["boot_id"] = json!("nope");
    let answer = post_json(&app, value.to_string()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["field"], "boot_id");

    let answer = post_json(&app, format!("{EXAMPLE} trailing")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    // Nothing of the rejected batches was stored.
    assert_eq!(get(&app, "/api/v1/snapshot").await.rows().len(), 0);
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let mut config = Config::for_tests();
    config.token = Some("s3cret-token".into());
    let app = app(config);
    let send = |auth: Option<&'static str>| {
        let mut request =
            Request::post("/api/v1/readings").header("content-type", "application/json");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.body(Body::from(EXAMPLE)).expect("req")
    };
    for auth in [
        None,
        Some("Bearer wrong-token!"),
        Some("Bearer s3cret"),
        Some("s3cret-token"),
    ] {
        let answer = call(&app, send(auth)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(answer.content_type, "application/json");
    }
    let answer = call(&app, send(Some("Bearer s3cret-token"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // Queries stay open for Grafana.
    assert_eq!(get(&app, "/api/v1/snapshot").await.status, StatusCode::OK);
}

/// Two cpu pods and one memory pod, one batch per second for `seconds` seconds.
async fn ingest_minutes(app: &App, start: u64, seconds: u64) {
    for s in 0..seconds {
        let cpu = 10.0 * (s % 4) as f64; // 0,10,20,30 repeating
        let b = batch(
            "node-a",
            BOOT,
            s,
            start + s * 1000,
            vec![
                container("cpu", 0, cpu),
                container("cpu", 1, cpu + 1.0),
                container("memory", 2, 5.0),
            ],
        );
        let answer = post_batch(app, &b).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
}

#[tokio::test]
async fn container_query_downsamples_filters_and_sorts() {
    let app = app(Config::for_tests());
    ingest_minutes(&app, T0, 40).await;
    let from = T0;
    let to = T0 + 39_999;
    let answer = get(
        &app,
        &format!("/api/v1/query/containers?from={from}&to={to}&step_ms=4000"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let rows = answer.rows();
    assert_eq!(rows.len(), 10 * 3, "10 buckets x 3 series");
    let times: Vec<i64> = rows
        .iter()
        .map(|r| r["time"].as_i64().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "sorted by time");
    let first = &rows[0];
    for key in [
        "node",
        "namespace",
        "pod",
        "container",
        "workload",
        "kind",
        "series",
    ] {
        assert!(first[key].is_string(), "{key} is a string column");
    }
    assert_eq!(first["series"], "stress/lab-cpu-0/stress");
    // Each 4 s bucket averages 0,10,20,30.
    assert_eq!(first["cpu_percent"], 15.0);
    assert_eq!(first["memory_bytes"], 1_048_576);
    assert_eq!(first["io_ops_per_sec"].as_f64().expect("io"), 10.4);

    // Filters: kind, then workload with Grafana's "All", then a container, then one metric.
    let rows = get(
        &app,
        &format!("/api/v1/query/containers?from={from}&to={to}&step_ms=4000&kind=memory"),
    )
    .await
    .rows();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r["kind"] == "memory"));
    let rows = get(&app, &format!("/api/v1/query/containers?from={from}&to={to}&step_ms=4000&workload=$__all&kind=cpu,memory")).await.rows();
    assert_eq!(rows.len(), 30);
    let rows = get(&app, &format!("/api/v1/query/containers?from={from}&to={to}&step_ms=40000&container=stress/lab-cpu-1/stress&metric=cpu_percent")).await.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["value"], 16.0);
    assert!(rows[0].get("memory_bytes").is_none());
    let rows = get(
        &app,
        &format!("/api/v1/query/containers?from={from}&to={to}&workload=other"),
    )
    .await
    .rows();
    assert!(rows.is_empty());
}

#[tokio::test]
async fn step_is_raised_to_keep_at_most_2000_points_per_series() {
    let app = app(Config::for_tests());
    ingest_minutes(&app, T0, 3).await;
    // A 10-hour window at a 1 ms step would be 36 million points; the step becomes 18 s.
    let to = T0 + 36_000_000;
    let rows = get(
        &app,
        &format!("/api/v1/query/containers?from={T0}&to={to}&step_ms=1"),
    )
    .await
    .rows();
    assert_eq!(rows.len(), 3, "all three seconds fall in one 18 s bucket");
}

#[tokio::test]
async fn query_parameter_errors_are_400_naming_the_parameter() {
    let app = app(Config::for_tests());
    for (uri, field) in [
        ("/api/v1/query/containers?from=yesterday", "from"),
        ("/api/v1/query/containers?from=10&to=5", "from"),
        ("/api/v1/query/containers?step_ms=0", "step_ms"),
        ("/api/v1/query/containers?metric=temperature", "metric"),
        ("/api/v1/query/nodes?to=x", "to"),
        ("/api/v1/query/pods-per-kind?step_ms=-5", "step_ms"),
        ("/api/v1/snapshot?max_age_ms=-1", "max_age_ms"),
        ("/data?limit=0", "limit"),
        ("/api/v1/labels/workloads?from=abc", "from"),
    ] {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(answer.json()["field"], field, "{uri}");
    }
    let answer = get(&app, "/api/v1/labels/colours").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.json()["error"].is_string());
}

#[tokio::test]
async fn node_query_and_pods_per_kind() {
    let app = app(Config::for_tests());
    ingest_minutes(&app, T0, 20).await;
    let to = T0 + 19_999;
    let rows = get(
        &app,
        &format!("/api/v1/query/nodes?from={T0}&to={to}&step_ms=10000"),
    )
    .await
    .rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["node"], "node-a");
    assert_eq!(rows[0]["cpu_percent"], 40.0);
    assert_eq!(rows[0]["cpus"], 2);
    assert_eq!(rows[0]["memory_total_bytes"], 8u64 << 30);
    assert_eq!(rows[0]["memory_used_percent"], 37.5);
    assert!(rows[0]["time"].as_i64().expect("t") < rows[1]["time"].as_i64().expect("t"));

    let rows = get(
        &app,
        &format!("/api/v1/query/pods-per-kind?from={T0}&to={to}&step_ms=10000"),
    )
    .await
    .rows();
    assert_eq!(rows.len(), 4, "2 buckets x 2 kinds");
    assert_eq!(rows[0]["kind"], "cpu");
    assert_eq!(rows[0]["pods"], 2);
    assert_eq!(rows[1]["kind"], "memory");
    assert_eq!(rows[1]["pods"], 1);
}

#[tokio::test]
async fn label_lists_for_dashboard_variables() {
    let app = app(Config::for_tests());
    ingest_minutes(&app, T0, 2).await;
    assert_eq!(post_json(&app, EXAMPLE).await.status, StatusCode::OK);
    let values = |rows: Vec<serde_json::Value>| -> Vec<String> {
        rows.iter()
            .map(|r| r["value"].as_str().expect("value").to_string())
            .collect()
    };
    assert_eq!(
        values(get(&app, "/api/v1/labels/workloads").await.rows()),
        ["lab"]
    );
    assert_eq!(
        values(get(&app, "/api/v1/labels/kinds").await.rows()),
        ["cpu", "disk", "memory", "system"]
    );
    assert_eq!(
        values(get(&app, "/api/v1/labels/containers?kind=cpu").await.rows()),
        ["stress/lab-cpu-0/stress", "stress/lab-cpu-1/stress"]
    );
    assert_eq!(
        values(get(&app, "/api/v1/labels/nodes").await.rows()),
        ["node-a", "stressmix-control-plane"]
    );
    assert_eq!(
        values(get(&app, "/api/v1/labels/namespaces").await.rows()),
        ["stress"]
    );
    assert_eq!(get(&app, "/api/v1/labels/pods").await.rows().len(), 4);
    // A window with no samples lists nothing.
    assert!(
        get(&app, "/api/v1/labels/workloads?from=1000&to=2000")
            .await
            .rows()
            .is_empty()
    );
}

#[tokio::test]
async fn snapshot_is_the_latest_batch_per_node() {
    let app = app(Config::for_tests());
    ingest_minutes(&app, T0, 5).await;
    let rows = get(&app, "/api/v1/snapshot").await.rows();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["time"] == T0 + 4000));
    assert_eq!(rows[0]["cpu_percent"], 0.0); // s=4 -> 0
    assert_eq!(rows[1]["cpu_percent"], 1.0);
    assert_eq!(rows[2]["kind"], "memory");
}

#[tokio::test]
async fn legacy_data_keeps_the_original_contract() {
    let app = app(Config::for_tests());
    ingest_minutes(&app, T0, 2).await;
    let to = T0 + 1000;
    let answer = get(&app, &format!("/data?from={T0}&to={to}")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let rows = answer.rows();
    assert_eq!(rows.len(), 6);
    let row = rows[0].as_object().expect("object");
    let mut keys: Vec<&str> = row.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["CPU", "Disc", "IO", "Mem", "time"]);
    assert_eq!(row["time"], "2025-11-28T23:00:00.000Z");
    assert!(row["CPU"].is_f64());
    assert_eq!(row["Mem"], 0.5);
    assert_eq!(row["IO"], 10, "integer operations");
    assert_eq!(row["Disc"], 3, "integer MB: 2 MiB read + 1 MiB written");
    assert_eq!(rows[5]["time"], "2025-11-28T23:00:01.000Z");
    // The limit keeps the newest rows.
    let rows = get(&app, &format!("/data?from={T0}&to={to}&limit=2"))
        .await
        .rows();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["time"] == "2025-11-28T23:00:01.000Z"));
}

#[tokio::test]
async fn retention_rolls_up_then_queries_read_the_rollups() {
    let app = app(Config::for_tests());
    ingest_minutes(&app, T0, 120).await;
    let to = T0 + 119_999;
    let before = get(
        &app,
        &format!("/api/v1/query/containers?from={T0}&to={to}&step_ms=60000"),
    )
    .await
    .rows();
    assert_eq!(before.len(), 6);
    // Two days later: raw rows are past the 24 h retention, rollups are kept 30 days.
    let report = app
        .db
        .retention(RetentionPolicy {
            now_ms: T0 as i64 + 2 * 86_400_000,
            raw: Duration::from_secs(86_400),
            rollup: Duration::from_secs(30 * 86_400),
        })
        .await
        .expect("retention");
    assert_eq!(report.raw_rows_rolled_up, 360);
    let after = get(
        &app,
        &format!("/api/v1/query/containers?from={T0}&to={to}&step_ms=60000"),
    )
    .await
    .rows();
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        for (key, value) in b.as_object().expect("row") {
            match value.as_f64() {
                Some(x) => assert!(
                    (a[key].as_f64().expect("number") - x).abs() < 1e-9,
                    "{key}: {a} vs {b}"
                ),
                None => assert_eq!(&a[key], value, "{key}"),
            }
        }
    }
    let nodes = get(
        &app,
        &format!("/api/v1/query/nodes?from={T0}&to={to}&step_ms=60000"),
    )
    .await
    .rows();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["memory_used_percent"], 37.5);
    let pods = get(
        &app,
        &format!("/api/v1/query/pods-per-kind?from={T0}&to={to}&step_ms=60000"),
    )
    .await
    .rows();
    assert_eq!(pods.len(), 4);
    // Raw rows are gone: the legacy endpoint (raw only) has nothing left.
    assert!(
        get(&app, &format!("/data?from={T0}&to={to}"))
            .await
            .rows()
            .is_empty()
    );
    // A retried old batch is still recognised (ids are kept as long as rollups).
    let retry = post_batch(
        &app,
        &batch("node-a", BOOT, 7, T0 + 7000, vec![container("cpu", 0, 1.0)]),
    )
    .await;
    assert_eq!(retry.json()["status"], "duplicate");

    // Past the rollup retention everything goes, including the series and batch ids.
    let report = app
        .db
        .retention(RetentionPolicy {
            now_ms: T0 as i64 + 40 * 86_400_000,
            raw: Duration::from_secs(86_400),
            rollup: Duration::from_secs(30 * 86_400),
        })
        .await
        .expect("retention");
    assert_eq!(report.batches_deleted, 120);
    assert_eq!(report.series_deleted, 3);
    assert!(
        get(
            &app,
            &format!("/api/v1/query/containers?from={T0}&to={to}&step_ms=60000")
        )
        .await
        .rows()
        .is_empty()
    );
    assert!(
        get(&app, "/api/v1/labels/workloads")
            .await
            .rows()
            .is_empty()
    );
}

#[tokio::test]
async fn late_rows_merge_into_existing_rollups_exactly() {
    let app = app(Config::for_tests());
    let policy = RetentionPolicy {
        now_ms: T0 as i64 + 2 * 86_400_000,
        raw: Duration::from_secs(86_400),
        rollup: Duration::from_secs(30 * 86_400),
    };
    let one = |seq: u64, cpu: f64| {
        batch(
            "node-a",
            BOOT,
            seq,
            T0 + seq * 1000,
            vec![container("cpu", 0, cpu)],
        )
    };
    assert_eq!(post_batch(&app, &one(0, 10.0)).await.status, StatusCode::OK);
    app.db.retention(policy).await.expect("retention");
    // Arrives after its minute was rolled up.
    assert_eq!(post_batch(&app, &one(1, 30.0)).await.status, StatusCode::OK);
    app.db.retention(policy).await.expect("retention");
    let rows = get(
        &app,
        &format!(
            "/api/v1/query/containers?from={T0}&to={}&step_ms=60000&metric=cpu_percent",
            T0 + 59_999
        ),
    )
    .await
    .rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["value"], 20.0);
}

#[tokio::test]
async fn metrics_health_readiness_and_openapi() {
    let app = app(Config::for_tests());
    assert_eq!(post_json(&app, EXAMPLE).await.status, StatusCode::OK);
    assert_eq!(post_json(&app, EXAMPLE).await.status, StatusCode::OK);
    assert_eq!(post_json(&app, "[]").await.status, StatusCode::BAD_REQUEST);
    let metrics = get(&app, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    assert!(
        text.contains("stressmix_logsvc_batches_total{outcome=\"stored\"} 1"),
        "{text}"
    );
    assert!(text.contains("stressmix_logsvc_batches_total{outcome=\"duplicate\"} 1"));
    assert!(text.contains("stressmix_logsvc_readings_total 3"));
    assert!(text.contains("stressmix_logsvc_rejected_total{reason=\"bad_json\"} 1"));
    assert!(text.contains("stressmix_node_cpu_percent{node=\"stressmix-control-plane\"} 57.5"));
    assert!(
        text.contains("stressmix_container_cpu_percent{") && text.contains("pod=\"lab-cpu-0\"")
    );
    assert!(text.contains("# EOF"));

    let health = get(&app, "/healthz").await;
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let ready = get(&app, "/readyz").await;
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (StatusCode::OK, json!("ready"))
    );

    let openapi = get(&app, "/openapi.json").await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert_eq!(openapi.json(), openapi::document());
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../openapi.json")).expect("committed openapi.json");
    assert_eq!(
        openapi.json(),
        committed,
        "logsvc/openapi.json is stale: run `make openapi`"
    );
    let paths = &openapi.json()["paths"];
    let routes = routes();
    for route in &routes {
        let (method, path) = (route.method, route.path);
        assert!(
            paths[path][method].is_object(),
            "openapi.json lacks {method} {path}"
        );
    }
    let documented: usize = paths
        .as_object()
        .expect("paths")
        .values()
        .map(|p| p.as_object().expect("ops").len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "openapi.json documents exactly the routes"
    );

    app.db.shutdown().await;
    assert_eq!(
        get(&app, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        post_json(&app, EXAMPLE.replace("42", "43")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = app(Config::for_tests());
    let answer = get(&app, "/nope").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.json()["error"].is_string());
    let answer = get(&app, "/api/v1/readings").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer.json()["error"].is_string());
}
