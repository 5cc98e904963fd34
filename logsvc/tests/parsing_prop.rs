//! Property tests of request parsing: arbitrary bodies, mutated batches and arbitrary content
//! types never panic the service and never get a 5xx.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use proptest::prelude::*;
use stressmix_logsvc::Config;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn client_error_or_ok(status: u16) -> bool {
    matches!(status, 200 | 400 | 413 | 415)
}

/// Any JSON value, a few levels deep, with the awkward numbers included.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN/inf", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("x".repeat(5000))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path to a value inside the example batch.
fn paths(value: &serde_json::Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                prefix.push(k.clone());
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(i.to_string());
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn replace(value: &mut serde_json::Value, path: &[String], new: serde_json::Value) {
    let mut target = value;
    for part in path {
        target = match target {
            serde_json::Value::Object(map) => map.get_mut(part).expect("path exists"),
            serde_json::Value::Array(items) => &mut items[part.parse::<usize>().expect("index")],
            _ => unreachable!("paths only lead through containers"),
        };
    }
    *target = new;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_get_a_5xx(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let rt = runtime();
        let app = app(Config::for_tests());
        let answer = rt.block_on(post_json(&app, body));
        prop_assert!(client_error_or_ok(answer.status.as_u16()), "{}", answer.status);
        prop_assert_eq!(answer.content_type.as_str(), "application/json");
    }

    #[test]
    fn mutated_batches_are_stored_or_refused_with_a_field(
        pick in any::<prop::sample::Index>(),
        new in json_value(),
        remove in any::<bool>(),
    ) {
        let rt = runtime();
        let app = app(Config::for_tests());
        let mut value: serde_json::Value = serde_json::from_str(EXAMPLE).expect("example");
        let mut all = Vec::new();
        paths(&value, &mut Vec::new(), &mut all);
        let path = pick.get(&all).clone();
        if remove && path.len() >= 2 {
            // Drop a field or an element instead of replacing it.
            let (last, parent) = path.split_last().expect("non-empty");
            let mut target = &mut value;
            for part in parent {
                target = match target {
                    serde_json::Value::Object(map) => map.get_mut(part).expect("path"),
                    serde_json::Value::Array(items) => &mut items[part.parse::<usize>().expect("index")],
                    _ => unreachable!(),
                };
            }
            match target {
                serde_json::Value::Object(map) => { map.remove(last); }
                serde_json::Value::Array(items) => { items.remove(last.parse::<usize>().expect("index")); }
                _ => unreachable!(),
            }
        } else {
            replace(&mut value, &path, new);
        }
        let answer = rt.block_on(post_json(&app, value.to_string()));
        prop_assert!(matches!(answer.status.as_u16(), 200 | 400), "{} {}", answer.status, answer.text());
        if answer.status == 400 {
            prop_assert!(answer.json()["error"].is_string());
        }
    }

    #[test]
    fn arbitrary_content_types_never_get_a_5xx(content_type in "[ -~]{0,60}") {
        let rt = runtime();
        let app = app(Config::for_tests());
        let request = Request::post("/api/v1/readings")
            .header("content-type", content_type.as_str())
            .body(Body::from(EXAMPLE))
            .expect("request");
        let answer = rt.block_on(call(&app, request));
        prop_assert!(client_error_or_ok(answer.status.as_u16()), "{}", answer.status);
    }

    #[test]
    fn arbitrary_query_strings_never_get_a_5xx(query in "[ -~]{0,80}", path in 0usize..7) {
        let rt = runtime();
        let app = app(Config::for_tests());
        let endpoint = [
            "/api/v1/query/containers", "/api/v1/query/nodes", "/api/v1/query/pods-per-kind",
            "/api/v1/labels/workloads", "/api/v1/snapshot", "/data", "/api/v1/labels/containers",
        ][path];
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'=' | b'&' | b'-' | b'_' | b'.' | b',' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        let answer = rt.block_on(get(&app, &format!("{endpoint}?{encoded}")));
        prop_assert!(matches!(answer.status.as_u16(), 200 | 400), "{} {}", answer.status, answer.text());
    }
}
