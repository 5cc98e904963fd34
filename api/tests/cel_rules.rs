//! The Workload CRD's CEL rules (`x-kubernetes-validations`), evaluated locally with kube's `cel`
//! feature exactly as generated into `crds/workload.yaml`: each invalid spec is refused with a message
//! naming the field, and every Workload in `examples/` is accepted.
#![cfg(feature = "crd")]

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};
use stressmix_api::workload::{MAX_REPLICAS_PER_KIND, MAX_REPLICAS_TOTAL, Workload};

fn schema() -> Value {
    let crd = Workload::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRD has a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Messages of every failed rule for `object` (empty when it is accepted).
fn failures(object: &Value) -> Vec<String> {
    match Validator::new().validate(&schema(), object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn workload(spec: Value) -> Value {
    json!({
        "apiVersion": "stressmix.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": "lab", "namespace": "stress"},
        "spec": spec,
    })
}

fn valid_spec() -> Value {
    json!({
        "mix": [
            {"kind": "cpu", "replicas": 2, "workers": 1, "load": 50},
            {"kind": "memory", "replicas": 2, "bytes": "100Mi"},
            {"kind": "io", "replicas": 1},
            {"kind": "disk", "replicas": 1, "bytes": "256Mi"}
        ],
        "template": {
            "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}},
            "durationSeconds": 30,
            "lifetimeSeconds": 150,
            "scratchSizeLimit": "512Mi"
        }
    })
}

/// Applies `edit` to a valid spec and asserts the result is refused with a message containing `field`.
fn assert_refused(edit: impl FnOnce(&mut Value), field: &str) {
    let mut spec = valid_spec();
    edit(&mut spec);
    let messages = failures(&workload(spec.clone()));
    assert!(
        messages.iter().any(|m| m.contains(field)),
        "spec {spec} should be refused naming {field}, got {messages:?}"
    );
}

#[test]
fn the_valid_spec_passes() {
    assert_eq!(failures(&workload(valid_spec())), Vec::<String>::new());
}

#[test]
fn a_minimal_spec_passes_with_defaults() {
    let spec = json!({"mix": [{"kind": "cpu", "replicas": 1}]});
    assert_eq!(failures(&workload(spec)), Vec::<String>::new());
}

#[test]
fn refuses_an_empty_mix() {
    assert_refused(|s| s["mix"] = json!([]), "spec.mix must list");
}

#[test]
fn refuses_duplicate_kinds() {
    assert_refused(
        |s| s["mix"][1] = json!({"kind": "cpu", "replicas": 1}),
        "spec.mix lists a kind more than once",
    );
}

#[test]
fn refuses_replicas_out_of_range() {
    assert_refused(
        |s| s["mix"][0]["replicas"] = json!(-1),
        "spec.mix[].replicas",
    );
    assert_refused(
        |s| s["mix"][0]["replicas"] = json!(MAX_REPLICAS_PER_KIND + 1),
        "spec.mix[].replicas",
    );
}

#[test]
fn accepts_replicas_at_the_bounds() {
    // Each kind at the per-kind maximum as long as the sum stays at the cap: 100 + 100 + 100 + 0.
    let mut spec = valid_spec();
    for (i, replicas) in [
        MAX_REPLICAS_PER_KIND,
        MAX_REPLICAS_PER_KIND,
        MAX_REPLICAS_PER_KIND,
        0,
    ]
    .into_iter()
    .enumerate()
    {
        spec["mix"][i]["replicas"] = json!(replicas);
    }
    assert_eq!(MAX_REPLICAS_PER_KIND * 3, MAX_REPLICAS_TOTAL);
    assert_eq!(failures(&workload(spec)), Vec::<String>::new());
}

#[test]
fn refuses_a_replica_sum_above_the_cap() {
    // Every kind within its own bound (100 + 100 + 100 + 1 = 301), the sum one above the cap.
    assert_refused(
        |s| {
            s["mix"][0]["replicas"] = json!(MAX_REPLICAS_PER_KIND);
            s["mix"][1]["replicas"] = json!(MAX_REPLICAS_PER_KIND);
            s["mix"][2]["replicas"] = json!(MAX_REPLICAS_PER_KIND);
            s["mix"][3]["replicas"] = json!(MAX_REPLICAS_TOTAL + 1 - 3 * MAX_REPLICAS_PER_KIND);
        },
        "spec.mix: the replicas of all kinds add up",
    );
}

#[test]
fn refuses_zero_workers() {
    assert_refused(|s| s["mix"][0]["workers"] = json!(0), "spec.mix[].workers");
}

#[test]
fn refuses_load_out_of_range_or_on_another_kind() {
    assert_refused(|s| s["mix"][0]["load"] = json!(0), "spec.mix[].load");
    assert_refused(|s| s["mix"][0]["load"] = json!(101), "spec.mix[].load");
    assert_refused(|s| s["mix"][2]["load"] = json!(50), "spec.mix[].load");
}

#[test]
fn refuses_missing_or_misplaced_bytes() {
    assert_refused(
        |s| {
            s["mix"][1].as_object_mut().expect("entry").remove("bytes");
        },
        "spec.mix[].bytes is required",
    );
    assert_refused(
        |s| s["mix"][2]["bytes"] = json!("1Mi"),
        "spec.mix[].bytes applies only",
    );
    assert_refused(|s| s["mix"][1]["bytes"] = json!("lots"), "spec.mix[].bytes");
    assert_refused(|s| s["mix"][1]["bytes"] = json!("0"), "spec.mix[].bytes");
}

#[test]
fn refuses_memory_bytes_at_or_above_the_memory_limit() {
    assert_refused(
        |s| s["mix"][1]["bytes"] = json!("128Mi"),
        "spec.mix[kind=memory].bytes",
    );
    assert_refused(
        |s| s["mix"][1]["bytes"] = json!(1_000_000_000),
        "spec.mix[kind=memory].bytes",
    );
}

#[test]
fn refuses_disk_bytes_above_the_scratch_size_limit() {
    assert_refused(
        |s| s["mix"][3]["bytes"] = json!("513Mi"),
        "spec.mix[kind=disk].bytes",
    );
}

#[test]
fn refuses_a_duration_longer_than_the_lifetime() {
    assert_refused(
        |s| s["template"]["durationSeconds"] = json!(151),
        "spec.template.durationSeconds",
    );
    assert_refused(
        |s| s["template"]["durationSeconds"] = json!(-1),
        "spec.template.durationSeconds",
    );
}

#[test]
fn refuses_a_lifetime_out_of_range() {
    assert_refused(
        |s| {
            s["template"]["lifetimeSeconds"] = json!(0);
            s["template"]["durationSeconds"] = json!(0);
        },
        "spec.template.lifetimeSeconds",
    );
}

#[test]
fn refuses_zero_limits() {
    assert_refused(
        |s| s["template"]["resources"]["limits"]["cpu"] = json!("0"),
        "spec.template.resources.limits.cpu",
    );
    assert_refused(
        |s| s["template"]["resources"]["limits"]["memory"] = json!(0),
        "spec.template.resources.limits.memory",
    );
}

#[test]
fn refuses_missing_limits() {
    assert_refused(
        |s| s["template"]["resources"] = json!({}),
        "spec.template.resources.limits is required",
    );
    assert_refused(
        |s| s["template"]["resources"] = json!({"limits": {"cpu": "1"}}),
        "spec.template.resources.limits.memory is required",
    );
    assert_refused(
        |s| s["template"]["resources"] = json!({"limits": {"memory": "1Gi"}}),
        "spec.template.resources.limits.cpu is required",
    );
}

#[test]
fn refuses_a_tiny_memory_limit() {
    assert_refused(
        |s| {
            s["template"]["resources"]["limits"]["memory"] = json!("1Mi");
            s["mix"][1]["bytes"] = json!("1Ki");
        },
        "spec.template.resources.limits.memory must be at least 4Mi",
    );
}

#[test]
fn refuses_an_empty_image_and_a_zero_scratch_size() {
    assert_refused(
        |s| s["template"]["image"] = json!(""),
        "spec.template.image",
    );
    assert_refused(
        |s| s["template"]["scratchSizeLimit"] = json!("0"),
        "spec.template.scratchSizeLimit",
    );
}

#[test]
fn every_example_workload_passes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable example");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document).expect("valid YAML");
            if value["kind"] != "Workload" {
                continue;
            }
            assert_eq!(
                failures(&value),
                Vec::<String>::new(),
                "{} is refused",
                path.display()
            );
            let typed: Result<Workload, _> = serde_json::from_value(value);
            assert!(
                typed.is_ok(),
                "{} does not parse: {typed:?}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected at least two example Workloads, found {checked}"
    );
}
