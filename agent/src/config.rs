//! Command-line flags; every flag can also come from the environment (`STRESSMIX_<FLAG>`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use stressmix_api::duration::parse_positive;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceChoice {
    /// The module when it can be used, else the cgroupfs fallback.
    Auto,
    /// The module only: exit with the cause when it cannot be used.
    Module,
    /// The cgroupfs fallback only.
    Cgroupfs,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Load the kernel module (the kmod-load init container): write the status file, print one
    /// line, exit 0 whatever happened (2 on a usage error).
    LoadModule(crate::load_module::LoadModuleArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// The stressmix node agent: reads per-cgroup counters, turns them into per-pod rates and ships them
/// to the log service.
#[derive(Debug, Clone, Parser)]
#[command(name = "stressmix-agent", version)]
pub struct Config {
    /// Without a subcommand the agent runs; `load-module` is the kmod-load init container.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// This node's name (set it from the downward API `spec.nodeName`); default: the hostname.
    #[arg(long, env = "STRESSMIX_NODE_NAME")]
    pub node_name: Option<String>,

    /// Base URL of the log service.
    #[arg(
        long,
        env = "STRESSMIX_LOGSVC_URL",
        default_value = "http://stressmix-logsvc.stressmix-system.svc:8000"
    )]
    pub logsvc_url: String,

    /// Bearer token for the log service (its `--token`), if it requires one.
    #[arg(long, env = "STRESSMIX_LOGSVC_TOKEN", hide_env_values = true)]
    pub logsvc_token: Option<String>,

    /// Time between readings (e.g. `5s`, `500ms`).
    #[arg(long, env = "STRESSMIX_INTERVAL", default_value = "5s", value_parser = parse_positive)]
    pub interval: Duration,

    /// Counter source.
    #[arg(long, env = "STRESSMIX_SOURCE", value_enum, default_value = "auto")]
    pub source: SourceChoice,

    /// Name of the module's /proc entry.
    #[arg(long, env = "STRESSMIX_PROC_NAME", default_value = "stressmix")]
    pub proc_name: String,

    /// Where procfs is mounted (the module's file is `<proc-root>/<proc-name>`).
    #[arg(long, env = "STRESSMIX_PROC_ROOT", default_value = "/proc")]
    pub proc_root: PathBuf,

    /// A `.ko` to load with finit_module when the /proc file is absent.
    #[arg(long, env = "STRESSMIX_MODULE_PATH")]
    pub module_path: Option<PathBuf>,

    /// Parameters for the module when the agent loads it.
    #[arg(long, env = "STRESSMIX_MODULE_PARAMS", default_value = "")]
    pub module_params: String,

    /// Unload the module on exit, only if this agent loaded it. Off by default: all kind nodes share
    /// one kernel.
    #[arg(long, env = "STRESSMIX_UNLOAD_ON_EXIT")]
    pub unload_on_exit: bool,

    /// The status `load-module` wrote (the kmod-load init container): when the agent reads cgroupfs,
    /// its cause and reason go into every batch (`source_reason`), a metric and the log.
    #[arg(long, env = "STRESSMIX_MODULE_STATUS_FILE")]
    pub module_status_file: Option<PathBuf>,

    /// The node's cgroup v2 mount: the fallback reads everything there; with the module, the
    /// throttling lines of `cpu.stat` (and, from a schema-1 module, pressure and memory events).
    #[arg(long, env = "STRESSMIX_CGROUP_ROOT", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,

    /// Fallback: report only container cgroups (like the module's `containers_only`).
    #[arg(long, env = "STRESSMIX_CONTAINERS_ONLY")]
    pub containers_only: bool,

    /// Do not talk to Kubernetes: attribute from cgroup paths only.
    #[arg(long, env = "STRESSMIX_NO_KUBERNETES")]
    pub no_kubernetes: bool,

    /// Address for /metrics and /healthz.
    #[arg(long, env = "STRESSMIX_METRICS_ADDR", default_value = "0.0.0.0:9100")]
    pub metrics_addr: SocketAddr,

    /// Batches kept while the log service is unreachable; past it the oldest are dropped (counted
    /// and logged). The default holds 12.5 minutes at the default 5 s interval.
    #[arg(long, env = "STRESSMIX_BUFFER_BATCHES", default_value_t = 150)]
    pub buffer_batches: usize,

    /// Most containers in the per-container series of `/metrics` (each has a dozen series); the
    /// rest are left out and counted in `stressmix_agent_container_series_dropped`.
    #[arg(long, env = "STRESSMIX_METRICS_MAX_CONTAINERS", default_value_t = 500)]
    pub metrics_max_containers: usize,

    /// First retry delay; doubles per failure (with jitter) up to `--backoff-max`.
    #[arg(long, env = "STRESSMIX_BACKOFF_INITIAL", default_value = "500ms", value_parser = parse_positive)]
    pub backoff_initial: Duration,

    #[arg(long, env = "STRESSMIX_BACKOFF_MAX", default_value = "30s", value_parser = parse_positive)]
    pub backoff_max: Duration,

    /// Timeout of one POST to the log service.
    #[arg(long, env = "STRESSMIX_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_positive)]
    pub request_timeout: Duration,

    /// On SIGTERM, keep sending what is buffered for at most this long.
    #[arg(long, env = "STRESSMIX_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_positive)]
    pub shutdown_grace: Duration,

    #[arg(long, env = "STRESSMIX_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_positive_and_read_by_the_shared_parser() {
        let interval = |text: &str| {
            Config::try_parse_from(["stressmix-agent", "--interval", text]).map(|c| c.interval)
        };
        assert_eq!(interval("1.5").ok(), Some(Duration::from_millis(1500)));
        assert_eq!(interval("500ms").ok(), Some(Duration::from_millis(500)));
        let refused = interval("0s").expect_err("a zero interval");
        assert!(
            refused.to_string().contains("must be more than zero"),
            "{refused}"
        );
        assert!(interval("fast").is_err());
    }

    #[test]
    fn defaults_hold_a_ten_minute_outage() {
        let c = Config::try_parse_from(["stressmix-agent"]).expect("defaults");
        assert_eq!(c.interval, Duration::from_secs(5));
        assert!(c.buffer_batches as u64 * c.interval.as_secs() >= 600);
        assert!(!c.unload_on_exit);
        assert_eq!(c.metrics_addr.port(), 9100);
        assert!(c.command.is_none());
    }

    #[test]
    fn the_flat_flags_still_run_the_agent() {
        let c = Config::try_parse_from([
            "stressmix-agent",
            "--source",
            "auto",
            "--proc-name=stressmix",
            "--cgroup-root=/host/sys/fs/cgroup",
            "--module-status-file",
            "/var/run/stressmix-kmod/status",
        ])
        .expect("flags");
        assert!(c.command.is_none());
        assert_eq!(
            c.module_status_file.as_deref(),
            Some(std::path::Path::new("/var/run/stressmix-kmod/status"))
        );
    }
}
