//! Command-line flags; every flag can also come from `STRESSMIX_<FLAG>` in the environment.

use std::net::SocketAddr;

use clap::Parser;

/// The image pods get when their Workload names none.
pub const DEFAULT_IMAGE: &str = concat!("stressmix/stressmix:", env!("CARGO_PKG_VERSION"));

/// stressmix-operator: keeps the pods of every Workload matching its spec.
#[derive(Debug, Clone, Parser)]
#[command(name = "stressmix-operator", version, about)]
pub struct Cli {
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "STRESSMIX_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Watch only these namespaces (repeat the flag or give a comma list). Default: all namespaces.
    #[arg(long, env = "STRESSMIX_NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,

    /// Namespace of the leader-election Lease. Default: $POD_NAMESPACE, else `default`.
    #[arg(long, env = "STRESSMIX_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "STRESSMIX_LEASE_NAME",
        default_value = "stressmix-operator"
    )]
    pub lease_name: String,

    /// Identity written into the Lease. Default: <hostname>-<pid>.
    #[arg(long, env = "STRESSMIX_IDENTITY")]
    pub identity: Option<String>,

    /// Image for pods whose Workload sets no spec.template.image.
    #[arg(long, env = "STRESSMIX_DEFAULT_IMAGE", default_value = DEFAULT_IMAGE)]
    pub default_image: String,

    /// Seconds a Lease stays valid after its last renewal; a standby takes over at most this long
    /// after the leader vanished without releasing it.
    #[arg(long, env = "STRESSMIX_LEASE_DURATION_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=600))]
    pub lease_duration_seconds: u64,

    /// Seconds before expiry at which the leader renews the Lease.
    #[arg(long, env = "STRESSMIX_LEASE_RENEW_GRACE_SECONDS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub lease_renew_grace_seconds: u64,
}

impl Cli {
    /// The Lease namespace after applying the documented fallbacks.
    pub fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "default".to_owned())
    }

    /// The Lease identity after applying the documented fallback.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "stressmix-operator".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let cli = Cli::try_parse_from(["stressmix-operator"]).expect("parses");
        assert_eq!(cli.metrics_addr.to_string(), "0.0.0.0:8080");
        assert!(cli.namespace.is_empty());
        assert_eq!(cli.lease_name, "stressmix-operator");
        assert_eq!(cli.default_image, "stressmix/stressmix:0.1.0");
        assert!(
            cli.identity()
                .ends_with(&format!("-{}", std::process::id()))
        );
    }

    #[test]
    fn namespaces_repeat_or_split_on_commas() {
        let cli = Cli::try_parse_from([
            "stressmix-operator",
            "--namespace",
            "a,b",
            "--namespace",
            "c",
            "--identity",
            "me",
            "--lease-namespace",
            "sys",
        ])
        .expect("parses");
        assert_eq!(cli.namespace, ["a", "b", "c"]);
        assert_eq!(cli.identity(), "me");
        assert_eq!(cli.lease_namespace(), "sys");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Cli::try_parse_from(["stressmix-operator", "--metrics-addr", "nope"]).is_err());
        assert!(
            Cli::try_parse_from(["stressmix-operator", "--lease-duration-seconds", "0"]).is_err()
        );
    }
}
