//! Wiring: Kubernetes client, leader election, one controller per watched namespace, the HTTP
//! server and signal handling.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, ResourceExt};
use stressmix_api::workload::{LABEL_MANAGED_BY, LABEL_WORKLOAD, MANAGED_BY, Workload};
use thiserror::Error;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::backoff::SlotBackoff;
use crate::cli::Cli;
use crate::inflight::{IN_FLIGHT_TTL, InFlight};
use crate::leader::{self, LeaseConfig};
use crate::metrics::{self, Health, Metrics};
use crate::ready::ReadyGate;
use crate::reconcile::{Context, error_policy, reconcile};
use crate::slim::{SlimPod, prune};
use crate::written::WrittenStatuses;

/// Workloads reconciled at the same time per controller (so at most 4 × 32 API calls in flight).
pub const RECONCILE_CONCURRENCY: u16 = 4;

/// Errors that stop the operator.
#[derive(Debug, Error)]
pub enum AppError {
    /// No kubeconfig or in-cluster configuration.
    #[error("cannot build a Kubernetes client (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Client(#[source] kube::Error),
    /// The metrics address cannot be bound.
    #[error("cannot serve /metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Runs until SIGTERM/SIGINT: stops reconciling, releases the Lease and returns.
pub async fn run(cli: Cli) -> Result<(), AppError> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AppError::Signals)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
        }
        let _ = shutdown_tx.send(true);
    });

    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(cli.metrics_addr)
        .await
        .map_err(|source| AppError::Metrics {
            addr: cli.metrics_addr,
            source,
        })?;
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let server = tokio::spawn(metrics::serve_on(
        listener,
        health,
        wait_for(shutdown_rx.clone()),
    ));
    info!(addr = %cli.metrics_addr, "serving /metrics, /healthz, /readyz");

    let client = Client::try_default().await.map_err(AppError::Client)?;
    let identity = cli.identity();
    let lease_namespace = cli.lease_namespace();
    let lease_config = LeaseConfig {
        name: cli.lease_name.clone(),
        identity: identity.clone(),
        duration: Duration::from_secs(cli.lease_duration_seconds),
        grace: Duration::from_secs(
            cli.lease_renew_grace_seconds
                .min(cli.lease_duration_seconds - 1),
        ),
    };
    info!(lease = %lease_config.name, namespace = %lease_namespace, %identity, "joining leader election");
    let (leader_tx, mut leader_rx) = watch::channel(false);
    let election = tokio::spawn(leader::run(
        Api::<Lease>::namespaced(client.clone(), &lease_namespace),
        lease_config,
        leader_tx,
        shutdown_rx.clone(),
    ));
    ready.store(true, Ordering::Relaxed);

    let backoff = Arc::new(Mutex::new(SlotBackoff::new(
        Duration::from_secs(5),
        Duration::from_secs(300),
    )));
    let mut shutdown = shutdown_rx.clone();
    'outer: loop {
        // Standby until the Lease is ours.
        while !*leader_rx.borrow_and_update() {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break 'outer,
                changed = leader_rx.changed() => if changed.is_err() { break 'outer },
            }
        }
        metrics.leader.set(1);
        let controllers = run_controllers(&cli, &client, &identity, &metrics, &backoff);
        tokio::select! {
            // Shutdown first: on SIGTERM the election also reports the lease gone.
            biased;
            _ = shutdown.wait_for(|s| *s) => break 'outer,
            () = controllers => warn!("controllers stopped"),
            _ = leader_rx.wait_for(|leading| !*leading) => warn!("lease lost: stopped reconciling"),
        }
        metrics.leader.set(0);
        if *shutdown.borrow() {
            break;
        }
    }
    metrics.leader.set(0);
    info!("stopped reconciling; releasing the lease");
    if tokio::time::timeout(Duration::from_secs(5), election)
        .await
        .is_err()
    {
        warn!("leader election did not finish within 5 s");
    }
    match tokio::time::timeout(Duration::from_secs(2), server).await {
        Ok(Ok(Err(err))) => error!(error = %err, "metrics server failed"),
        Err(_) => warn!("metrics server did not stop within 2 s"),
        _ => {}
    }
    info!("bye");
    Ok(())
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// One controller per watched namespace (or one for all), until their streams end or are dropped.
async fn run_controllers(
    cli: &Cli,
    client: &Client,
    identity: &str,
    metrics: &Arc<Metrics>,
    backoff: &Arc<Mutex<SlotBackoff>>,
) {
    let scopes: Vec<Option<String>> = if cli.namespace.is_empty() {
        vec![None]
    } else {
        cli.namespace.iter().cloned().map(Some).collect()
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "stressmix-operator".to_owned(),
            instance: Some(identity.to_owned()),
        },
    );
    // What one leadership term remembers per Workload, shared by every scope's controller (keyed by
    // namespace and name), so the records gauge counts them all.
    let in_flight = Arc::new(InFlight::new(IN_FLIGHT_TTL));
    let written = Arc::new(WrittenStatuses::default());
    let controllers = scopes.into_iter().map(|scope| {
        let (workloads, pods): (Api<Workload>, Api<SlimPod>) = match &scope {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        info!(
            namespace = scope.as_deref().unwrap_or("*"),
            "reconciling Workloads"
        );
        let (pod_store, pod_writer) = reflector::store();
        let forget_deleted = in_flight.clone();
        let pod_events = watcher(
            pods,
            // Streaming lists: the initial state arrives one pod per watch event instead of in
            // pages of 500 full pods, which kept ~15 MB of parse buffers resident.
            watcher::Config::default()
                .labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"))
                .streaming_lists(),
        )
        .default_backoff()
        .modify(prune)
        .reflect(pod_writer)
        // After the store applied it: a create of that name is settled, its slot free again.
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(pod) = event
                && let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name)
                && let Some(workload) = pod.labels().get(LABEL_WORKLOAD)
            {
                forget_deleted.forget(ns, workload, name);
            }
        })
        .touched_objects();
        let (pods_ready, open_when_filled) = ReadyGate::for_store(pod_store.clone());
        let ctx = Arc::new(Context {
            client: client.clone(),
            pods: pod_store,
            pods_ready,
            in_flight: in_flight.clone(),
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            default_image: cli.default_image.clone(),
            backoff: backoff.clone(),
            written: written.clone(),
        });
        let (workload_store, workload_writer) = reflector::store();
        let records = ctx.clone();
        let listed = workload_store.clone();
        let workload_events = watcher(workloads, watcher::Config::default())
            .default_backoff()
            .reflect(workload_writer)
            // After the store applied it: what a deleted Workload leaves behind goes with it. A
            // relist delivers no deletes, so after one only the listed Workloads (of this
            // controller's scope) keep their records.
            .inspect_ok(move |event| match event {
                watcher::Event::Delete(wl) => {
                    records.forget_workload(&wl.namespace().unwrap_or_default(), &wl.name_any());
                }
                watcher::Event::InitDone => {
                    let live: HashSet<(String, String)> = listed
                        .state()
                        .iter()
                        .map(|wl| (wl.namespace().unwrap_or_default(), wl.name_any()))
                        .collect();
                    let scope = scope.clone();
                    records.retain_workloads(move |ns, name| {
                        scope.as_deref().is_some_and(|s| s != ns)
                            || live.contains(&(ns.to_owned(), name.to_owned()))
                    });
                }
                _ => {}
            })
            .applied_objects();
        let controller = Controller::for_stream(workload_events, workload_store)
            // Each reconcile has up to 32 API calls in flight (executor.rs). Unbounded parallel
            // reconciles of 90 new Workloads put thousands of creates in flight at once, and the
            // Lease renewal missed its deadline behind them (benchmarks.md, "the stall").
            .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
            .owns_stream(pod_events)
            .run(reconcile, error_policy, ctx)
            .for_each(|result| async move {
                if let Err(err) = result {
                    warn!(error = %err, "controller");
                }
            });
        futures::future::join(open_when_filled, controller)
    });
    join_all(controllers).await;
}
