//! The agent's lifecycle: pick the source, start the pod watch, collect every interval, ship, and on
//! SIGTERM flush within the grace period.

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::attribution::PodIndex;
use crate::collector::{Collector, new_boot_id};
use crate::config::{Config, SourceChoice};
use crate::loader::{
    Kernel, LiveKernel, LoadError, ModuleConfig, ModuleState, ensure_module, unload_if_ours,
};
use crate::metrics::{self, Metrics};
use crate::module_status::{Cause, ModuleStatus, Outcome};
use crate::shipper::{Shipper, ShipperConfig};
use crate::source::{CgroupfsReader, Source, read_module_document};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the module cannot be used (--source module)")]
    Module(#[from] crate::loader::LoadError),
    #[error("the module cannot be used (--source module)")]
    ModuleDocument(#[source] crate::source::SourceError),
    #[error("the module is not used ({why}) and the cgroupfs fallback cannot read {}", .root.display())]
    Cgroupfs {
        why: String,
        root: PathBuf,
        #[source]
        source: crate::source::SourceError,
    },
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

/// The source the agent reads for its lifetime, and why when that needs saying: the cause and
/// reason of a fallback to cgroupfs, or of a module of another build.
pub struct Chosen {
    pub source: Source,
    pub module_state: Option<ModuleState>,
    pub why: Option<ModuleStatus>,
}

/// What kmod-load wrote; a file that cannot be read is itself the reason (cause `no-status`).
fn init_status(config: &Config) -> Option<ModuleStatus> {
    let path = config.module_status_file.as_deref()?;
    Some(ModuleStatus::read(path).unwrap_or_else(|e| {
        ModuleStatus::failed(
            Cause::NoStatus,
            &format!("{e} (did the kmod-load init container run?)"),
        )
    }))
}

/// Why the module is not used: the init container's failure when it reported one, else the agent's
/// own loader (or reader) error.
fn fallback_reason(status: Option<ModuleStatus>, own: &RunError, config: &Config) -> ModuleStatus {
    if let Some(status) = status.filter(|s| s.outcome == Outcome::Failed) {
        return status;
    }
    match own {
        RunError::Module(LoadError::NotConfigured { proc })
            if config.module_status_file.is_none() =>
        {
            ModuleStatus::failed(
                Cause::NotConfigured,
                &format!(
                    "module mode none: {} is absent and neither --module-path nor \
                     --module-status-file is given",
                    proc.display()
                ),
            )
        }
        RunError::Module(e) => ModuleStatus::failed(e.cause(), &e.to_string()),
        RunError::ModuleDocument(e) => {
            ModuleStatus::failed(Cause::ModuleUnreadable, &e.to_string())
        }
        other => ModuleStatus::failed(Cause::Other, &other.to_string()),
    }
}

/// The module, loaded if configured, and one read of its document (an old build's schema may be
/// unsupported).
fn use_module(kernel: &impl Kernel, module: &ModuleConfig) -> Result<ModuleState, RunError> {
    let state = ensure_module(kernel, module)?;
    read_module_document(&module.proc_path).map_err(RunError::ModuleDocument)?;
    Ok(state)
}

/// Choose the source: the module when usable (loading it if configured), else the fallback.
///
/// A module of another build (kmod-load's `stale-module`) is still read when its document's
/// schema_version is supported: the schema is the compatibility contract, and unloading it would
/// pull it from under every node sharing the kernel. Every batch then says `stale-module: ...`.
pub fn choose_source(config: &Config, kernel: &impl Kernel) -> Result<Chosen, RunError> {
    let fallback = |why: ModuleStatus| {
        let reader = CgroupfsReader::new(
            config.cgroup_root.clone(),
            config.proc_root.clone(),
            config.containers_only,
        );
        reader.check().map_err(|source| RunError::Cgroupfs {
            why: why.line(),
            root: config.cgroup_root.clone(),
            source,
        })?;
        Ok::<_, RunError>(Chosen {
            source: Source::Cgroupfs(reader),
            module_state: None,
            why: Some(why),
        })
    };
    let module = module_config(config);
    let status = init_status(config);
    let stale = status
        .clone()
        .filter(|s| s.cause == Some(Cause::StaleModule));
    let on_module = |state: ModuleState| Chosen {
        source: Source::Module {
            proc_path: module.proc_path.clone(),
            cgroup_root: config.cgroup_root.clone(),
        },
        module_state: Some(state),
        why: stale.clone(),
    };
    match config.source {
        SourceChoice::Cgroupfs => fallback(ModuleStatus::failed(
            Cause::SourceCgroupfs,
            "--source cgroupfs: the module is not used",
        )),
        SourceChoice::Module => Ok(on_module(use_module(kernel, &module)?)),
        SourceChoice::Auto => match use_module(kernel, &module) {
            Ok(state) => Ok(on_module(state)),
            Err(own) => fallback(fallback_reason(status, &own, config)),
        },
    }
}

/// Say once, at start, which source and why: the log, the metric (batches carry it too).
fn announce(chosen: &Chosen, proc_path: &std::path::Path, metrics: &Metrics) {
    let source = chosen.source.kind().as_str();
    metrics.set_source_cause(source, chosen.why.as_ref().and_then(|w| w.cause));
    match (&chosen.why, &chosen.module_state) {
        (None, state) => {
            tracing::info!(source, state = ?state, proc = %proc_path.display(), "using the kernel module")
        }
        (Some(why), Some(state)) => tracing::warn!(
            source,
            state = ?state,
            cause = why.cause.map_or("none", Cause::as_str),
            reason = %why.reason,
            "using a kernel module of another build (every batch says so in source_reason)"
        ),
        (Some(why), None) => tracing::warn!(
            source,
            cause = why.cause.map_or("none", Cause::as_str),
            reason = %why.reason,
            "the kernel module is not used; reading cgroupfs (every batch says source=cgroupfs and this reason)"
        ),
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
    let metrics = Metrics::new(config.metrics_max_containers);
    let node = node_name(&config)?;
    let boot_id = new_boot_id();
    let kernel = LiveKernel::default();
    let chosen = choose_source(&config, &kernel)?;
    announce(&chosen, &module_config(&config).proc_path, &metrics);
    let module_state = chosen.module_state;
    let mut collector = Collector::new(
        chosen.source,
        node.clone(),
        boot_id.clone(),
        metrics.clone(),
    )
    .with_source_reason(chosen.why.map(|w| w.line()));
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
                match collector.collect(pods.index()) {
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
        match unload_if_ours(&kernel, &module_config(&config), &state) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::fake::FakeKernel;
    use clap::Parser;
    use std::path::Path;

    struct Node {
        dir: tempfile::TempDir,
    }

    impl Node {
        /// A cgroup v2 root and an empty proc root.
        fn new() -> Node {
            let dir = tempfile::tempdir().expect("tmp");
            std::fs::create_dir_all(dir.path().join("cg")).expect("mkdir");
            std::fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
            std::fs::write(dir.path().join("cg/cgroup.controllers"), "cpu\n").expect("write");
            Node { dir }
        }

        fn path(&self, name: &str) -> std::path::PathBuf {
            self.dir.path().join(name)
        }

        fn config(&self, extra: &[&str]) -> Config {
            let cg = format!("--cgroup-root={}", self.path("cg").display());
            let proc = format!("--proc-root={}", self.path("proc").display());
            let mut args = vec!["stressmix-agent", cg.as_str(), proc.as_str()];
            args.extend_from_slice(extra);
            Config::try_parse_from(args).expect("flags")
        }

        fn status(&self, status: &ModuleStatus) -> String {
            let path = self.path("status");
            status.write(&path).expect("write");
            format!("--module-status-file={}", path.display())
        }

        /// The module's document at /proc/stressmix (what a loaded module shows).
        fn module_document(&self, k: &FakeKernel) {
            let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../api/tests/fixtures/kmod/handwritten-v1.json");
            std::fs::copy(fixture, self.path("proc/stressmix")).expect("copy");
            k.proc_present.set(true);
        }
    }

    fn why(chosen: &Chosen) -> (Option<Cause>, String) {
        let why = chosen.why.as_ref().expect("a reason");
        (why.cause, why.line())
    }

    #[test]
    fn a_failed_init_container_is_the_reason_of_the_fallback() {
        let node = Node::new();
        let status = ModuleStatus::failed(Cause::NoHeaders, "no kernel headers for 6.1.0-99-amd64");
        let flag = node.status(&status);
        let chosen =
            choose_source(&node.config(&[&flag]), &FakeKernel::new(None)).expect("falls back");
        assert!(matches!(chosen.source, Source::Cgroupfs(_)));
        assert_eq!(
            why(&chosen),
            (
                Some(Cause::NoHeaders),
                "no-headers: no kernel headers for 6.1.0-99-amd64".into()
            )
        );
    }

    #[test]
    fn without_init_containers_the_reason_is_module_mode_none() {
        let node = Node::new();
        let chosen = choose_source(&node.config(&[]), &FakeKernel::new(None)).expect("falls back");
        let (cause, line) = why(&chosen);
        assert_eq!(cause, Some(Cause::NotConfigured));
        assert!(line.contains("module mode none"), "{line}");

        let chosen = choose_source(&node.config(&["--source=cgroupfs"]), &FakeKernel::new(None))
            .expect("cgroupfs");
        assert_eq!(why(&chosen).0, Some(Cause::SourceCgroupfs));

        let flag = format!("--module-status-file={}", node.path("absent").display());
        let chosen =
            choose_source(&node.config(&[&flag]), &FakeKernel::new(None)).expect("falls back");
        let (cause, line) = why(&chosen);
        assert_eq!(cause, Some(Cause::NoStatus));
        assert!(line.contains("kmod-load"), "{line}");
    }

    #[test]
    fn the_agents_own_loader_names_its_failure() {
        let node = Node::new();
        let ko = crate::loader::fake::module_file(node.dir.path(), "6.12.57-amd64 SMP ");
        let flag = format!("--module-path={}", ko.display());
        let chosen =
            choose_source(&node.config(&[&flag]), &FakeKernel::new(None)).expect("falls back");
        assert_eq!(why(&chosen).0, Some(Cause::VermagicMismatch));
    }

    #[test]
    fn a_loaded_module_needs_no_reason_and_a_stale_one_says_so() {
        let node = Node::new();
        let k = FakeKernel::new(None);
        node.module_document(&k);
        let loaded = ModuleStatus {
            outcome: Outcome::Loaded,
            cause: None,
            reason: "loaded".into(),
        };
        let flag = node.status(&loaded);
        let chosen = choose_source(&node.config(&[&flag]), &k).expect("module");
        assert!(matches!(chosen.source, Source::Module { .. }));
        assert!(chosen.why.is_none());

        let stale = ModuleStatus::failed(Cause::StaleModule, "OLD vs NEW: rmmod stressmix");
        let flag = node.status(&stale);
        let chosen = choose_source(&node.config(&[&flag]), &k).expect("module");
        assert!(matches!(chosen.source, Source::Module { .. }));
        assert_eq!(why(&chosen).0, Some(Cause::StaleModule));

        // An old build whose document this agent cannot read: the fallback, saying why.
        std::fs::write(node.path("proc/stressmix"), r#"{"schema_version": 99}"#).expect("write");
        let chosen = choose_source(&node.config(&[&flag]), &k).expect("falls back");
        assert!(matches!(chosen.source, Source::Cgroupfs(_)));
        assert_eq!(why(&chosen).0, Some(Cause::StaleModule));
    }

    #[test]
    fn cgroup_v1_is_said_clearly() {
        let node = Node::new();
        std::fs::remove_file(node.path("cg/cgroup.controllers")).expect("rm");
        std::fs::create_dir_all(node.path("cg/memory")).expect("mkdir");
        std::fs::write(node.path("cg/memory/tasks"), "1\n").expect("write");
        let Err(err) = choose_source(&node.config(&[]), &FakeKernel::new(None)) else {
            panic!("v1 cannot be read");
        };
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert!(chain.contains("module mode none"), "{chain}");
        assert!(chain.contains("cgroup v1"), "{chain}");
    }
}
