//! The agent's lifecycle: pick the source, start the pod watch, collect every interval, ship, and on
//! SIGTERM flush within the grace period.

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::attribution::PodIndex;
use crate::collector::{Collector, new_boot_id};
use crate::config::{Config, SourceChoice};
use crate::loader::{LiveKernel, ModuleConfig, ModuleState, ensure_module, unload_if_ours};
use crate::metrics::{self, Metrics};
use crate::shipper::{Shipper, ShipperConfig};
use crate::source::{CgroupfsReader, Source};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the module cannot be used (--source module)")]
    Module(#[from] crate::loader::LoadError),
    #[error("the cgroupfs fallback cannot be used (is {} a cgroup v2 mount?)", .1.display())]
    Cgroupfs(#[source] crate::source::SourceError, PathBuf),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client")]
    Client(#[from] reqwest::Error),
    #[error("cannot install the signal handlers")]
    Signal(#[source] std::io::Error),
    #[error("no --node-name and the hostname is unreadable")]
    NodeName(#[source] std::io::Error),
}

fn module_config(config: &Config) -> ModuleConfig {
    ModuleConfig {
        proc_path: config.proc_root.join(&config.proc_name),
        ko_path: config.module_path.clone(),
        params: config.module_params.clone(),
        unload_on_exit: config.unload_on_exit,
    }
}

/// Choose the source: the module when usable (loading it if configured), else the fallback.
fn choose_source(config: &Config) -> Result<(Source, Option<ModuleState>), RunError> {
    let fallback = || {
        let reader = CgroupfsReader::new(
            config.cgroup_root.clone(),
            config.proc_root.clone(),
            config.containers_only,
        );
        reader
            .check()
            .map_err(|e| RunError::Cgroupfs(e, config.cgroup_root.clone()))?;
        Ok::<_, RunError>(Source::Cgroupfs(reader))
    };
    let module = module_config(config);
    match config.source {
        SourceChoice::Cgroupfs => {
            tracing::warn!(
                source = "cgroupfs",
                "using the cgroupfs fallback (--source cgroupfs)"
            );
            Ok((fallback()?, None))
        }
        SourceChoice::Module => {
            let state = ensure_module(&LiveKernel, &module)?;
            tracing::info!(source = "module", state = ?state, proc = %module.proc_path.display(), "using the kernel module");
            Ok((
                Source::Module {
                    proc_path: module.proc_path,
                },
                Some(state),
            ))
        }
        SourceChoice::Auto => match ensure_module(&LiveKernel, &module) {
            Ok(state) => {
                tracing::info!(source = "module", state = ?state, proc = %module.proc_path.display(), "using the kernel module");
                Ok((
                    Source::Module {
                        proc_path: module.proc_path,
                    },
                    Some(state),
                ))
            }
            Err(cause) => {
                tracing::warn!(
                    source = "cgroupfs",
                    cause = %cause,
                    "the kernel module cannot be used; falling back to reading cgroupfs (every batch says source=cgroupfs)"
                );
                Ok((fallback()?, None))
            }
        },
    }
}

fn node_name(config: &Config) -> Result<String, RunError> {
    if let Some(name) = &config.node_name {
        return Ok(name.clone());
    }
    std::fs::read_to_string(PathBuf::from("/proc/sys/kernel/hostname"))
        .map(|h| h.trim().to_owned())
        .map_err(RunError::NodeName)
}

/// Pod attribution: the Kubernetes watch when enabled and reachable, else paths only.
enum Pods {
    PathsOnly,
    #[cfg(feature = "kubernetes")]
    Watch(crate::attribution::kube_pods::PodWatch),
}

impl Pods {
    async fn start(config: &Config, node: &str) -> Pods {
        if config.no_kubernetes {
            tracing::info!("--no-kubernetes: attributing cgroups from their paths only");
            return Pods::PathsOnly;
        }
        #[cfg(feature = "kubernetes")]
        {
            match crate::attribution::kube_pods::PodWatch::start(node).await {
                Ok(watch) => {
                    tracing::info!(node, "watching this node's pods for attribution");
                    Pods::Watch(watch)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no Kubernetes client (no in-cluster config or kubeconfig): attributing from cgroup paths only");
                    Pods::PathsOnly
                }
            }
        }
        #[cfg(not(feature = "kubernetes"))]
        {
            tracing::info!(
                node,
                "built without Kubernetes support: attributing from cgroup paths only"
            );
            Pods::PathsOnly
        }
    }

    fn index(&self) -> PodIndex {
        match self {
            Pods::PathsOnly => PodIndex::new(),
            #[cfg(feature = "kubernetes")]
            Pods::Watch(w) => w.index(),
        }
    }
}

pub async fn run(config: Config) -> Result<(), RunError> {
    let metrics = Metrics::new();
    let node = node_name(&config)?;
    let boot_id = new_boot_id();
    let (source, module_state) = choose_source(&config)?;
    let mut collector = Collector::new(source, node.clone(), boot_id.clone(), metrics.clone());
    let pods = Pods::start(&config, &node).await;

    let shipper = Shipper::new(
        &ShipperConfig {
            base_url: config.logsvc_url.clone(),
            token: config.logsvc_token.clone(),
            request_timeout: config.request_timeout,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            buffer_batches: config.buffer_batches,
        },
        metrics.clone(),
    )?;
    let (stop_tx, stop_rx) = watch::channel(None);
    let sender = tokio::spawn(shipper.clone().run(stop_rx));

    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: config.metrics_addr,
            source,
        })?;
    let (server_stop_tx, mut server_stop_rx) = watch::channel(false);
    let app = metrics::router(
        metrics.clone(),
        config.interval * 3 + config.request_timeout,
    );
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = server_stop_rx.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "metrics server failed");
        }
    });

    tracing::info!(
        node = %node,
        boot_id = %boot_id,
        interval_ms = u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX),
        logsvc = %config.logsvc_url,
        buffer_batches = config.buffer_batches,
        metrics_addr = %config.metrics_addr,
        "agent started"
    );

    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                match collector.collect(&pods.index()) {
                    Ok(Some(batch)) => shipper.enqueue(batch),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "collection failed"),
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }

    let buffered = shipper.buffered();
    tracing::info!(
        buffered,
        grace_ms = u64::try_from(config.shutdown_grace.as_millis()).unwrap_or(u64::MAX),
        "stopping: flushing buffered batches"
    );
    let _ = stop_tx.send(Some(tokio::time::Instant::now() + config.shutdown_grace));
    if let Err(e) = sender.await {
        tracing::error!(error = %e, "sender task failed");
    }
    let _ = server_stop_tx.send(true);
    let _ = server.await;

    if let Some(state) = module_state {
        match unload_if_ours(&LiveKernel, &module_config(&config), &state) {
            Ok(Some(name)) => {
                tracing::info!(module = %name, "unloaded the module this agent loaded (--unload-on-exit)")
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "unloading the module failed"),
        }
    }
    tracing::info!(
        built = metrics.batches_built.get(),
        sent = metrics.batches_sent.get(),
        dropped_buffer_full = metrics.dropped_total(crate::metrics::DropReason::BufferFull),
        dropped_rejected = metrics.dropped_total(crate::metrics::DropReason::Rejected),
        dropped_shutdown = metrics.dropped_total(crate::metrics::DropReason::Shutdown),
        "agent stopped"
    );
    Ok(())
}
