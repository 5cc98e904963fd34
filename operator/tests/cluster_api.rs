//! Scenarios 1 and 2 of the cluster tests: the Workload CRD as the real API server serves it.
//! They need only the CRD, no operator.

mod common;

use common::{TestEnv, kubectl, kubectl_output};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

/// Scenario 1: `kubectl apply -f crds/` (done by the harness), `kubectl explain` shows the
/// documented fields, `kubectl get wl` prints the printer columns.
#[tokio::test]
async fn crd_is_served_explained_and_printed() {
    let env = TestEnv::new("crd").await;

    // An update of an existing CRD skips checks that a first install runs (the API server does not
    // re-estimate the cost of CEL rules that did not change), so a stale cluster could hide a CRD
    // that a fresh one refuses: also create it under another group, as a server-side dry run.
    let crd_file = common::repo_root().join("crds/workload.yaml");
    let renamed = std::fs::read_to_string(&crd_file)
        .expect("crds/workload.yaml")
        .replace("stressmix.dev", "fresh-install.stressmix.dev");
    let tmp = std::env::temp_dir().join(format!("{}-crd.yaml", env.ns));
    std::fs::write(&tmp, renamed).expect("write renamed CRD");
    let out = kubectl_output(&[
        "create",
        "--dry-run=server",
        "-f",
        tmp.to_str().expect("utf-8"),
    ]);
    let _ = std::fs::remove_file(&tmp);
    assert!(
        out.status.success(),
        "a fresh API server refuses crds/workload.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let crd = crds
        .get("workloads.stressmix.dev")
        .await
        .expect("CRD installed");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["wl".to_string()][..])
    );
    let established = crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "CRD is not Established");

    let explain = kubectl_explain("workloads.spec.mix").await;
    assert!(
        explain.contains("DESCRIPTION:"),
        "explain output:\n{explain}"
    );
    assert!(
        explain.contains("one entry per kind"),
        "the doc comment of spec.mix is missing from explain:\n{explain}"
    );
    for field in ["kind", "replicas", "workers", "load", "bytes"] {
        let listed = explain.lines().any(|l| {
            l.trim_start().starts_with(&format!("{field}\t"))
                || l.trim_start().starts_with(&format!("{field} "))
        });
        assert!(
            listed,
            "field {field} missing from `kubectl explain workloads.spec.mix`:\n{explain}"
        );
    }
    explains_fields(
        "workloads.spec.template",
        &[
            "durationSeconds",
            "lifetimeSeconds",
            "resources",
            "image",
            "nodeSelector",
            "tolerations",
        ],
    )
    .await;

    // The runs and what they delivered are documented where users look.
    explains_fields(
        "workloads.status.kinds",
        &[
            "completedRuns",
            "failedRuns",
            "lastFailure",
            "lastCompletionTime",
            "delivered",
        ],
    )
    .await;
    let delivered = kubectl_explain("workloads.status.kinds.delivered").await;
    assert!(
        delivered.contains("CPU seconds per second of run"),
        "the doc comment of delivered.value is missing from explain:\n{delivered}"
    );

    env.create_workload("printed", common::spec_with(&[("cpu", 1)]))
        .await;
    let table = kubectl(&["get", "wl", "-n", &env.ns]);
    let header = table.lines().next().unwrap_or_default();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "NAME", "DESIRED", "READY", "RUNS", "FAILED", "STATUS", "AGE"
        ],
        "kubectl get wl header:\n{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| row.starts_with("printed ")),
        "row for the Workload missing:\n{table}"
    );
}

/// `kubectl explain` of a Workload field. The API server publishes a new CRD's OpenAPI a moment
/// after the CRD is Established, so this retries for a while.
/// Asserts that `kubectl explain <path>` names every one of `fields`.
async fn explains_fields(path: &str, fields: &[&str]) {
    let explain = kubectl_explain(path).await;
    for field in fields {
        assert!(
            explain.contains(field),
            "field {field} missing from `kubectl explain {path}`:\n{explain}"
        );
    }
}

async fn kubectl_explain(path: &str) -> String {
    let args = ["explain", path, "--api-version=stressmix.dev/v1alpha1"];
    let mut last = String::new();
    for _ in 0..60 {
        let out = kubectl_output(&args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("kubectl {} kept failing: {last}", args.join(" "));
}

/// One invalid spec, and the field path its refusal must name.
struct Invalid {
    what: &'static str,
    spec: Value,
    field: &'static str,
}

fn limits(cpu: &str, memory: &str) -> Value {
    json!({ "limits": { "cpu": cpu, "memory": memory } })
}

fn invalid_specs() -> Vec<Invalid> {
    let tmpl = |extra: Value| {
        let mut t = json!({ "resources": limits("100m", "128Mi"), "durationSeconds": 30, "lifetimeSeconds": 150 });
        if let (Some(t), Some(e)) = (t.as_object_mut(), extra.as_object()) {
            t.extend(e.clone());
        }
        t
    };
    let cpu = json!([{ "kind": "cpu", "replicas": 1 }]);
    vec![
        Invalid {
            what: "replicas above 100 (101)",
            spec: json!({ "mix": [{ "kind": "cpu", "replicas": 101 }], "template": tmpl(json!({})) }),
            field: "spec.mix[0].replicas",
        },
        Invalid {
            what: "negative replicas",
            spec: json!({ "mix": [{ "kind": "io", "replicas": -1 }], "template": tmpl(json!({})) }),
            field: "spec.mix[0].replicas",
        },
        Invalid {
            what: "unknown kind",
            spec: json!({ "mix": [{ "kind": "gpu", "replicas": 1 }], "template": tmpl(json!({})) }),
            field: "spec.mix[0].kind",
        },
        Invalid {
            what: "duplicate kind",
            spec: json!({ "mix": [{ "kind": "cpu", "replicas": 1 }, { "kind": "cpu", "replicas": 2 }], "template": tmpl(json!({})) }),
            field: "spec.mix",
        },
        Invalid {
            what: "empty mix",
            spec: json!({ "mix": [], "template": tmpl(json!({})) }),
            field: "spec.mix",
        },
        Invalid {
            what: "replicas summing above 300 (100 + 100 + 100 + 1)",
            spec: json!({ "mix": [{ "kind": "cpu", "replicas": 100 }, { "kind": "io", "replicas": 100 }, { "kind": "memory", "replicas": 100, "bytes": "64Mi" }, { "kind": "disk", "replicas": 1, "bytes": "64Mi" }], "template": tmpl(json!({})) }),
            field: "spec.mix: the replicas of all kinds add up",
        },
        Invalid {
            what: "memory bytes at the memory limit",
            spec: json!({ "mix": [{ "kind": "memory", "replicas": 1, "bytes": "128Mi" }], "template": tmpl(json!({})) }),
            field: "spec.mix[kind=memory].bytes",
        },
        Invalid {
            what: "memory without bytes",
            spec: json!({ "mix": [{ "kind": "memory", "replicas": 1 }], "template": tmpl(json!({})) }),
            field: "spec.mix[].bytes",
        },
        Invalid {
            what: "bytes on a cpu entry",
            spec: json!({ "mix": [{ "kind": "cpu", "replicas": 1, "bytes": "1Mi" }], "template": tmpl(json!({})) }),
            field: "spec.mix[].bytes",
        },
        Invalid {
            what: "load on a memory entry",
            spec: json!({ "mix": [{ "kind": "memory", "replicas": 1, "bytes": "1Mi", "load": 50 }], "template": tmpl(json!({})) }),
            field: "spec.mix[].load",
        },
        Invalid {
            what: "cpu load above 100 percent",
            spec: json!({ "mix": [{ "kind": "cpu", "replicas": 1, "load": 101 }], "template": tmpl(json!({})) }),
            field: "spec.mix[0].load",
        },
        Invalid {
            what: "zero workers",
            spec: json!({ "mix": [{ "kind": "io", "replicas": 1, "workers": 0 }], "template": tmpl(json!({})) }),
            field: "spec.mix[0].workers",
        },
        Invalid {
            what: "bytes that are not a quantity",
            spec: json!({ "mix": [{ "kind": "disk", "replicas": 1, "bytes": "lots" }], "template": tmpl(json!({})) }),
            field: "spec.mix[0].bytes",
        },
        Invalid {
            what: "zero bytes",
            spec: json!({ "mix": [{ "kind": "disk", "replicas": 1, "bytes": "0" }], "template": tmpl(json!({})) }),
            field: "spec.mix[0].bytes",
        },
        Invalid {
            what: "disk bytes above the scratch size",
            spec: json!({ "mix": [{ "kind": "disk", "replicas": 1, "bytes": "2Gi" }], "template": tmpl(json!({ "scratchSizeLimit": "1Gi" })) }),
            field: "spec.mix[kind=disk].bytes",
        },
        Invalid {
            what: "duration above lifetime",
            spec: json!({ "mix": cpu, "template": tmpl(json!({ "durationSeconds": 200, "lifetimeSeconds": 100 })) }),
            field: "spec.template.durationSeconds",
        },
        Invalid {
            what: "negative duration",
            spec: json!({ "mix": cpu, "template": tmpl(json!({ "durationSeconds": -5 })) }),
            field: "spec.template.durationSeconds",
        },
        Invalid {
            what: "zero lifetime",
            spec: json!({ "mix": cpu, "template": tmpl(json!({ "durationSeconds": 0, "lifetimeSeconds": 0 })) }),
            field: "spec.template.lifetimeSeconds",
        },
        Invalid {
            what: "zero cpu limit",
            spec: json!({ "mix": cpu, "template": tmpl(json!({ "resources": limits("0", "128Mi") })) }),
            field: "spec.template.resources.limits.cpu",
        },
        Invalid {
            what: "zero memory limit",
            spec: json!({ "mix": cpu, "template": tmpl(json!({ "resources": limits("100m", "0") })) }),
            field: "spec.template.resources.limits.memory",
        },
        Invalid {
            what: "memory limit below 4Mi",
            spec: json!({ "mix": cpu, "template": tmpl(json!({ "resources": limits("100m", "1Mi") })) }),
            field: "spec.template.resources.limits.memory",
        },
        Invalid {
            what: "limits without cpu",
            spec: json!({ "mix": cpu, "template": tmpl(json!({ "resources": { "limits": { "memory": "128Mi" } } })) }),
            field: "spec.template.resources.limits.cpu",
        },
        Invalid {
            what: "resources without limits",
            spec: json!({ "mix": cpu, "template": tmpl(json!({ "resources": {} })) }),
            field: "spec.template.resources.limits",
        },
        Invalid {
            what: "empty image",
            spec: json!({ "mix": cpu, "template": tmpl(json!({ "image": "" })) }),
            field: "spec.template.image",
        },
    ]
}

/// Scenario 2: invalid Workloads are refused by the API server with a message naming the field,
/// and nothing is created for them.
#[tokio::test]
async fn invalid_workloads_are_refused_naming_the_field() {
    let env = TestEnv::new("invalid").await;
    let cases = invalid_specs();
    assert!(
        cases.len() >= 12,
        "the issue asks for at least 12 invalid specs"
    );
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let name = format!("invalid-{i}");
        match env.try_create_workload(&name, case.spec.clone()).await {
            Ok(_) => failures.push(format!("{}: accepted", case.what)),
            Err(kube::Error::Api(status)) => {
                if status.code != 422 || status.reason != "Invalid" {
                    failures.push(format!(
                        "{}: refused with {} {} instead of 422 Invalid: {}",
                        case.what, status.code, status.reason, status.message
                    ));
                } else if !status.message.contains(case.field) {
                    failures.push(format!(
                        "{}: message does not name {}: {}",
                        case.what, case.field, status.message
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: unexpected error {e}", case.what)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid specs misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Nothing was stored and no pod exists in the namespace.
    let stored = env
        .workloads()
        .list(&ListParams::default())
        .await
        .expect("list Workloads");
    assert!(
        stored.items.is_empty(),
        "refused Workloads were stored: {:?}",
        stored
            .items
            .iter()
            .map(|w| w.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    let pods = env
        .pods()
        .list(&ListParams::default())
        .await
        .expect("list pods");
    assert!(pods.items.is_empty(), "pods exist for refused Workloads");

    // The same request with the field fixed is accepted: the refusals were about the field.
    env.create_workload(
        "valid",
        common::spec_with(&[("cpu", 1), ("memory", 1), ("disk", 1)]),
    )
    .await;
}

/// kubectl prints the API server's refusal for a bad manifest (what a user sees).
#[tokio::test]
async fn kubectl_apply_of_an_invalid_manifest_fails_with_the_field() {
    let env = TestEnv::new("kubectl-invalid").await;
    let dir = std::env::temp_dir().join(format!("{}.yaml", env.ns));
    std::fs::write(
        &dir,
        format!(
            "apiVersion: stressmix.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: bad\n  namespace: {}\nspec:\n  mix:\n  - kind: cpu\n    replicas: 1\n  template:\n    durationSeconds: 300\n    lifetimeSeconds: 60\n",
            env.ns
        ),
    )
    .expect("write manifest");
    let out = kubectl_output(&["apply", "-f", dir.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&dir);
    assert!(
        !out.status.success(),
        "kubectl apply accepted an invalid Workload"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.template.durationSeconds"),
        "kubectl error does not name the field: {stderr}"
    );
}

/// The Workloads in `examples/` are what users start from: the real API server accepts each one
/// (server-side dry run, in the test's namespace instead of `stress`).
#[tokio::test]
async fn examples_are_accepted_by_the_api_server() {
    let env = TestEnv::new("examples").await;
    let dir = common::repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("dir entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_none_or(|e| e != "yaml") || !text.contains("kind: Workload") {
            continue;
        }
        let manifest = text.replace("namespace: stress", &format!("namespace: {}", env.ns));
        let file = std::env::temp_dir().join(format!("{}-{checked}.yaml", env.ns));
        std::fs::write(&file, manifest).expect("write manifest");
        let out = kubectl_output(&[
            "create",
            "--dry-run=server",
            "-f",
            file.to_str().expect("utf-8"),
        ]);
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "{} refused: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(
        checked >= 1,
        "no Workload example found in {}",
        dir.display()
    );
}
