//! The executor and the reconcile pipeline against a mocked API server (`tower-test`): every
//! request the operator makes is recorded and answered by a rule of the test, so each failure mode
//! (a create conflict, a delete precondition failure, a 500 mid-batch, an event that cannot be
//! written, a status write refused) is shown with the calls made and the status written.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use serde_json::{Value, json};
use stressmix_api::workload::{StressKind, Workload};
use stressmix_operator::backoff::SlotBackoff;
use stressmix_operator::executor::{execute_creates, execute_deletes};
use stressmix_operator::inflight::InFlight;
use stressmix_operator::metrics::Metrics;
use stressmix_operator::planner::{Create, Delete, DeleteReason, KindDesire, Plan};
use stressmix_operator::ready::ReadyGate;
use stressmix_operator::reconcile::{ApiCall, Context, ReconcileError, reconcile};
use stressmix_operator::written::WrittenStatuses;

const NS: &str = "stress";

/// One request as the API server saw it.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

impl Call {
    fn is(&self, method: &str, path_end: &str) -> bool {
        self.method == method && self.path.ends_with(path_end)
    }
}

type Calls = Arc<Mutex<Vec<Call>>>;

fn status(code: u16, reason: &str) -> (u16, Value) {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("mocked {reason}"), "reason": reason, "code": code,
    });
    (code, body)
}

/// A client whose API server answers each request with `respond(call)` and records it.
fn mock_api(respond: impl Fn(&Call) -> (u16, Value) + Send + 'static) -> (Client, Calls) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    tokio::spawn(async move {
        while let Some((request, reply)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let call = Call {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            seen.lock().expect("calls").push(call.clone());
            let (code, body) = respond(&call);
            let response = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap_or_default()))
                .expect("response");
            reply.send_response(response);
        }
    });
    (Client::new(service, NS), calls)
}

/// The API server's usual answers: creates and patches echo the object, deletes return the pod.
fn ok(call: &Call) -> (u16, Value) {
    match call.method.as_str() {
        "POST" => (201, call.body.clone()),
        "DELETE" => (
            200,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}),
        ),
        _ => (200, workload_json()),
    }
}

fn workload_json() -> Value {
    json!({
        "apiVersion": "stressmix.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": "lab", "namespace": NS, "uid": "0d1c5c3e-8f2a-4b6e-9a7d-1234567890ab", "generation": 1},
        "spec": {"mix": [
            {"kind": "cpu", "replicas": 2},
            {"kind": "memory", "replicas": 1, "bytes": "64Mi"}
        ]}
    })
}

fn workload() -> Workload {
    serde_json::from_value(workload_json()).expect("workload")
}

async fn context(client: Client) -> Arc<Context> {
    let (pods, mut writer) = reflector::store();
    writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
    let (pods_ready, open) = ReadyGate::opened_by(async { true });
    open.await;
    Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "stressmix-operator".into(),
                instance: Some("test".into()),
            },
        ),
        client,
        pods,
        pods_ready,
        in_flight: Arc::new(InFlight::new(Duration::from_secs(30))),
        metrics: Arc::new(Metrics::new()),
        default_image: "stressmix/stressmix:test".into(),
        backoff: Arc::new(Mutex::new(SlotBackoff::new(
            Duration::from_secs(5),
            Duration::from_secs(300),
        ))),
        written: Arc::new(WrittenStatuses::default()),
    })
}

fn creates(names: &[&str]) -> Plan {
    Plan {
        creates: names
            .iter()
            .enumerate()
            .map(|(slot, name)| Create {
                kind: StressKind::Cpu,
                slot: u32::try_from(slot).expect("slot"),
                name: (*name).to_owned(),
            })
            .collect(),
        ..Plan::default()
    }
}

fn desired() -> Vec<KindDesire> {
    vec![KindDesire {
        kind: StressKind::Cpu,
        replicas: 3,
        template_hash: "h".into(),
    }]
}

/// Requests of `method` to a path ending in `path_end`.
fn count(calls: &Calls, method: &str, path_end: &str) -> usize {
    calls
        .lock()
        .expect("calls")
        .iter()
        .filter(|c| c.is(method, path_end))
        .count()
}

fn pod_name(call: &Call) -> String {
    call.body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn events(calls: &Calls) -> Vec<(String, String)> {
    let calls = calls.lock().expect("calls");
    calls
        .iter()
        .filter(|c| c.is("POST", "/events"))
        .map(|c| {
            let field = |k: &str| c.body[k].as_str().unwrap_or_default().to_owned();
            (field("reason"), field("note"))
        })
        .collect()
}

fn metric_line(ctx: &Context, prefix: &str) -> String {
    let text = ctx.metrics.render().expect("metrics");
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_create_conflict_is_a_pod_that_exists() {
    let (client, calls) = mock_api(|call| {
        if call.is("POST", "/pods") && pod_name(call) == "lab-cpu-1" {
            status(409, "AlreadyExists")
        } else {
            ok(call)
        }
    });
    let ctx = context(client).await;
    let plan = creates(&["lab-cpu-0", "lab-cpu-1"]);
    execute_creates(&ctx, &workload(), &plan, "img", &desired())
        .await
        .expect("a conflict is no error");

    let posted: Vec<String> = {
        let calls = calls.lock().expect("calls");
        let mut v: Vec<String> = calls
            .iter()
            .filter(|c| c.is("POST", "/pods"))
            .map(pod_name)
            .collect();
        v.sort();
        v
    };
    assert_eq!(posted, ["lab-cpu-0", "lab-cpu-1"]);
    assert_eq!(
        events(&calls),
        [("Created".to_owned(), "created 1 pods: lab-cpu-0".to_owned())]
    );
    // Both hold their slots until the cache shows them: the conflict proves the pod exists.
    assert_eq!(ctx.in_flight.pending(NS, "lab", |_| false).len(), 2);
    assert_eq!(
        metric_line(&ctx, "stressmix_operator_pods_created_total{kind=\"cpu\"}"),
        "stressmix_operator_pods_created_total{kind=\"cpu\"} 1"
    );
}

#[tokio::test]
async fn a_failed_delete_precondition_is_nothing_to_delete() {
    let (client, calls) = mock_api(|call| {
        if call.is("DELETE", "/pods/lab-cpu-0") {
            status(409, "Conflict")
        } else {
            ok(call)
        }
    });
    let ctx = context(client).await;
    let delete = |name: &str, uid: &str, reason| Delete {
        name: name.into(),
        uid: uid.into(),
        kind: Some(StressKind::Cpu),
        slot: Some(0),
        reason,
    };
    let plan = Plan {
        deletes: vec![
            delete("lab-cpu-0", "uid-0", DeleteReason::Expired),
            delete("lab-cpu-9", "uid-9", DeleteReason::Surplus),
        ],
        ..Plan::default()
    };
    let deleted = execute_deletes(&ctx, &workload(), &plan, &[]).await;
    deleted.result.expect("no error");
    assert_eq!(
        deleted.pods,
        ["lab-cpu-9"],
        "only the delete the server accepted counts"
    );

    let deletes: Vec<(String, Value)> = calls
        .lock()
        .expect("calls")
        .iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| (c.path.clone(), c.body["preconditions"]["uid"].clone()))
        .collect();
    assert_eq!(deletes.len(), 2);
    for (path, uid) in &deletes {
        let want = if path.ends_with("lab-cpu-0") {
            "uid-0"
        } else {
            "uid-9"
        };
        assert_eq!(uid, want, "{path}: every delete carries its pod's uid");
    }
    assert_eq!(
        events(&calls),
        [
            (
                "Replaced".to_owned(),
                "replacing 1 pods: lab-cpu-0 (expired)".to_owned()
            ),
            (
                "Deleted".to_owned(),
                "deleted 1 pods: lab-cpu-9 (surplus)".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn a_500_mid_batch_fails_the_reconcile_after_every_call_ran() {
    let (client, calls) = mock_api(|call| {
        if call.is("POST", "/pods") && pod_name(call) == "lab-cpu-1" {
            status(500, "InternalError")
        } else {
            ok(call)
        }
    });
    let ctx = context(client).await;
    let plan = creates(&["lab-cpu-0", "lab-cpu-1", "lab-cpu-2"]);
    let err = execute_creates(&ctx, &workload(), &plan, "img", &desired())
        .await
        .expect_err("the 500 is reported");
    assert!(
        matches!(&err, ReconcileError::Api { call: ApiCall::CreatePod, target, .. } if target == "stress/lab-cpu-1"),
        "{err}"
    );
    assert_eq!(err.metric_label(), "create_pod");
    let posted = count(&calls, "POST", "/pods");
    assert_eq!(posted, 3, "the other creates still ran");
    let pending: Vec<String> = ctx
        .in_flight
        .pending(NS, "lab", |_| false)
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        pending,
        ["lab-cpu-0", "lab-cpu-2"],
        "the failed create holds no slot"
    );
    let reasons: Vec<String> = events(&calls).into_iter().map(|(r, _)| r).collect();
    assert_eq!(reasons, ["Created", "CreateFailed"]);
}

#[tokio::test]
async fn an_event_that_cannot_be_written_fails_nothing() {
    let (client, calls) = mock_api(|call| {
        if call.path.ends_with("/events") {
            status(500, "InternalError")
        } else {
            ok(call)
        }
    });
    let ctx = context(client).await;
    execute_creates(
        &ctx,
        &workload(),
        &creates(&["lab-cpu-0"]),
        "img",
        &desired(),
    )
    .await
    .expect("the pod was created; the event is best effort");
    let calls = calls.lock().expect("calls");
    assert_eq!(calls.iter().filter(|c| c.is("POST", "/pods")).count(), 1);
    assert_eq!(
        calls.iter().filter(|c| c.is("POST", "/events")).count(),
        1,
        "one attempt"
    );
}

#[tokio::test]
async fn reconcile_creates_the_mix_and_writes_its_status() {
    let (client, calls) = mock_api(ok);
    let ctx = context(client).await;
    let action = reconcile(Arc::new(workload()), ctx.clone())
        .await
        .expect("reconciles");
    assert_eq!(action, Action::await_change());

    let calls = calls.lock().expect("calls").clone();
    let mut pods: Vec<String> = calls
        .iter()
        .filter(|c| c.is("POST", "/pods"))
        .map(pod_name)
        .collect();
    pods.sort();
    assert_eq!(pods, ["lab-cpu-0", "lab-cpu-1", "lab-memory-0"]);
    let status_writes: Vec<&Call> = calls
        .iter()
        .filter(|c| c.is("PATCH", "/workloads/lab/status"))
        .collect();
    assert_eq!(status_writes.len(), 1, "{calls:?}");
    let written = &status_writes[0].body["status"];
    assert_eq!(written["observedGeneration"], 1);
    assert_eq!(written["kinds"]["cpu"]["desired"], 2, "{written}");
    assert_eq!(written["kinds"]["memory"]["desired"], 1, "{written}");
    let ready = written["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ready["status"], "False", "no pod runs yet: {written}");
}

#[tokio::test]
async fn a_refused_status_write_is_a_labelled_reconcile_error() {
    let (client, calls) = mock_api(|call| {
        if call.method == "PATCH" {
            status(500, "InternalError")
        } else {
            ok(call)
        }
    });
    let ctx = context(client).await;
    let err = reconcile(Arc::new(workload()), ctx.clone())
        .await
        .expect_err("status refused");
    assert!(
        matches!(&err, ReconcileError::Api { call: ApiCall::WriteStatus, target, .. } if target == "stress/lab"),
        "{err}"
    );
    assert_eq!(err.metric_label(), "write_status");
    // The pods were still created before the status write failed.
    let posted = count(&calls, "POST", "/pods");
    assert_eq!(posted, 3);
}

/// A pod of the Workload as the watch delivers it, finished with `phase` and `terminated`.
fn finished_pod(
    name: &str,
    kind: &str,
    phase: &str,
    terminated: Value,
) -> stressmix_operator::slim::SlimPod {
    serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": NS, "uid": format!("{name}-uid"),
            "creationTimestamp": "2026-12-05T10:00:00Z",
            "labels": {"stressmix.dev/workload": "lab", "stressmix.dev/kind": kind},
            "ownerReferences": [{"apiVersion": "stressmix.dev/v1alpha1", "kind": "Workload",
              "name": "lab", "uid": "0d1c5c3e-8f2a-4b6e-9a7d-1234567890ab", "controller": true}]
        },
        "spec": {"nodeName": "n1"},
        "status": {"phase": phase, "containerStatuses": [{"name": "stress",
          "state": {"terminated": terminated}}]}
    }))
    .expect("pod")
}

#[tokio::test]
async fn finished_runs_are_counted_once_from_their_termination_state() {
    let summary = json!({"kind": "cpu", "workers": 1, "duration_seconds": 30.0,
        "stopped_by_signal": false, "cpu_seconds": 2.94, "resident_bytes": 1, "max_resident_bytes": 1,
        "held_bytes": 0, "bytes_written": 0, "bytes_read": 0, "write_syscalls": 0,
        "read_syscalls": 0, "sync_syscalls": 0, "operations": 0});
    let pods = [
        finished_pod(
            "lab-cpu-0",
            "cpu",
            "Succeeded",
            json!({"exitCode": 0, "reason": "Completed",
            "message": summary.to_string(), "finishedAt": "2026-12-05T10:00:30Z"}),
        ),
        finished_pod(
            "lab-memory-0",
            "memory",
            "Failed",
            json!({"exitCode": 137, "reason": "OOMKilled",
            "finishedAt": "2026-12-05T10:00:31Z"}),
        ),
    ];
    let gone = Arc::new(Mutex::new(false));
    let second_round = gone.clone();
    let (client, calls) = mock_api(move |call| {
        // In the second round the pods are gone already: their deletes are 404s.
        if call.method == "DELETE" && *second_round.lock().expect("flag") {
            status(404, "NotFound")
        } else {
            ok(call)
        }
    });
    let ctx = {
        let (store, mut writer) = reflector::store();
        for pod in &pods {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(pod.clone()));
        }
        let mut ctx = Arc::into_inner(context(client).await).expect("sole owner");
        ctx.pods = store;
        // The writer must outlive the reconciles: the store reads through it.
        std::mem::forget(writer);
        Arc::new(ctx)
    };

    reconcile(Arc::new(workload()), ctx.clone())
        .await
        .expect("reconciles");
    let written = {
        let calls = calls.lock().expect("calls");
        let patch = calls
            .iter()
            .rev()
            .find(|c| c.is("PATCH", "/workloads/lab/status"))
            .expect("status written");
        patch.body["status"].clone()
    };
    assert_eq!(written["completedRuns"], 1, "{written}");
    assert_eq!(written["failedRuns"], 1, "{written}");
    assert_eq!(
        written["kinds"]["memory"]["failedRuns"]["OOMKilled"], 1,
        "{written}"
    );
    assert_eq!(
        written["kinds"]["memory"]["lastFailure"]["pod"],
        "lab-memory-0"
    );
    assert_eq!(written["kinds"]["memory"]["lastFailure"]["exitCode"], 137);
    let delivered = &written["kinds"]["cpu"]["delivered"];
    assert_eq!(delivered["unit"], "cores", "{written}");
    assert!(
        (delivered["value"].as_f64().unwrap_or_default() - 0.098).abs() < 1e-9,
        "{delivered}"
    );
    let degraded = written["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Degraded"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(degraded["reason"], "RunsOOMKilled", "{written}");
    let reasons: Vec<String> = events(&calls).into_iter().map(|(r, _)| r).collect();
    assert!(reasons.contains(&"OOMKilled".to_owned()), "{reasons:?}");

    // The cache still shows both pods and, lagging, the Workload without the status just written.
    // The counts come from the status this process wrote, and deleting the pods again finds them
    // gone: nothing is lost, nothing counted twice.
    *gone.lock().expect("flag") = true;
    let stale = workload();
    calls.lock().expect("calls").clear();
    reconcile(Arc::new(stale), ctx.clone())
        .await
        .expect("reconciles");
    let calls = calls.lock().expect("calls");
    let rewritten = calls
        .iter()
        .find(|c| c.is("PATCH", "/workloads/lab/status"))
        .map(|c| c.body["status"].clone());
    if let Some(status) = rewritten {
        assert_eq!(
            (
                status["completedRuns"].clone(),
                status["failedRuns"].clone()
            ),
            (json!(1), json!(1))
        );
    }
}
