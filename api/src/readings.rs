//! The reading batch: what the node agent POSTs to the log service at [`READINGS_PATH`].
//!
//! One batch is one collection interval on one node: the node's memory and CPU, and one entry per
//! cgroup (a container of a pod, or a "system" cgroup). Rates are already computed by the agent.
//! `(boot_id, sequence)` identifies a batch: the log service stores a retried batch once.
//!
//! Compatibility: fields are only ever added, and new fields are optional, so an older log service
//! accepts a newer agent's batches (unknown fields are ignored, not rejected).
//!
//! Serde only; no Kubernetes dependency (the agent and the log service both use it).

use serde::{Deserialize, Serialize};

/// Where the log service accepts batches.
pub const READINGS_PATH: &str = "/api/v1/readings";

/// Bounds the log service enforces (see [`ReadingBatch::validate`]).
pub mod limits {
    /// Most container entries in one batch.
    pub const MAX_CONTAINERS: usize = 10_000;
    /// Node names are DNS subdomains.
    pub const MAX_NODE_NAME: usize = 253;
    /// Longest cgroup path (PATH_MAX).
    pub const MAX_CGROUP_PATH: usize = 4096;
    /// Container ids are 64 hex characters; leave room for a runtime prefix.
    pub const MAX_CONTAINER_ID: usize = 128;
    /// Pod, container and Workload names (DNS subdomain).
    pub const MAX_NAME: usize = 253;
    /// Namespaces are DNS labels.
    pub const MAX_NAMESPACE: usize = 63;
    /// Pod UIDs are UUIDs (36); leave room.
    pub const MAX_POD_UID: usize = 64;
    /// Stress kind ("cpu", "memory", "io", "disk", "system", ...).
    pub const MAX_KIND: usize = 63;
    /// One human line saying why the agent reads the source it reads.
    pub const MAX_SOURCE_REASON: usize = 1024;
    /// Timestamps must fall before 3000-01-01 (epoch ms); catches seconds/nanoseconds mix-ups.
    pub const MAX_TIMESTAMP_MS: u64 = 32_503_680_000_000;
    /// Integers are stored as SQLite INTEGER (i64).
    pub const MAX_INTEGER: u64 = i64::MAX as u64;
    /// Pressure and throttling values (percent of the interval, seconds per second) are stored as
    /// 8-digit decimals up to this; no real reading comes near it.
    pub const MAX_CONTENTION_VALUE: f64 = 1e8;
}

/// The value of `kind` for cgroups that belong to no stress pod.
pub const SYSTEM_KIND: &str = "system";

/// Where the agent took the counters from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReadingSource {
    /// The stressmix kernel module (`/proc/<name>`).
    Module,
    /// The userspace fallback reading cgroupfs.
    Cgroupfs,
}

impl ReadingSource {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadingSource::Module => "module",
            ReadingSource::Cgroupfs => "cgroupfs",
        }
    }
}

/// One collection interval of one node. Unknown fields are ignored (see the module docs); an
/// example is `examples/readings-batch.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReadingBatch {
    /// Kubernetes node name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = limits::MAX_NODE_NAME)))]
    pub node_name: String,
    /// Random UUID the agent picks at start; with `sequence` it identifies the batch.
    #[cfg_attr(feature = "schema", schemars(extend("format" = "uuid")))]
    pub boot_id: String,
    /// Increments by one per batch within one `boot_id`.
    #[cfg_attr(feature = "schema", schemars(range(max = limits::MAX_INTEGER)))]
    pub sequence: u64,
    /// When the readings were taken, milliseconds since the Unix epoch.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = limits::MAX_TIMESTAMP_MS)))]
    pub timestamp_ms: u64,
    /// Where the counters came from.
    pub source: ReadingSource,
    /// Why this source, as `<cause>: <one human line>`: set when the agent fell back to cgroupfs
    /// (e.g. `no-headers: ...`), or reads a module of another build (`stale-module: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_SOURCE_REASON)))]
    pub source_reason: Option<String>,
    /// Whole-node values.
    pub node: NodeReading,
    /// One entry per cgroup.
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_CONTAINERS)))]
    pub containers: Vec<ContainerReading>,
    /// Where each group of counters came from (agents that read pressure, memory events and
    /// throttling set it; `source` above is the usage counters' source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_sources: Option<FieldSources>,
    /// OOM kills seen in this interval: one entry per cgroup whose processes were killed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_CONTAINERS)))]
    pub oom_kills: Vec<OomKill>,
}

/// Where each group of counters of a batch came from; `None`: nobody offered it on this node
/// (e.g. PSI disabled at boot, or no `cpu` controller delegated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FieldSources {
    /// CPU, memory, task and I/O usage (as the batch's `source`).
    pub usage: ReadingSource,
    /// The `*_pressure_*_percent` fields.
    #[serde(default)]
    pub pressure: Option<ReadingSource>,
    /// The memory events behind `oom_kills`.
    #[serde(default)]
    pub memory_events: Option<ReadingSource>,
    /// The `cpu_throttled_*` fields (always cgroupfs: no module can reach them).
    #[serde(default)]
    pub cpu_throttling: Option<ReadingSource>,
}

/// How the count of an [`OomKill`] was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OomObservation {
    /// From the cgroup's own `oom_kill` counter, seen at both ends of the interval.
    Cgroup,
    /// The cgroup was gone at the end of the interval (a killed container's cgroup is removed at
    /// once): from its nearest remaining ancestor's counter, less what that ancestor's remaining
    /// descendants account for.
    Ancestor,
}

impl OomObservation {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            OomObservation::Cgroup => "cgroup",
            OomObservation::Ancestor => "ancestor",
        }
    }
}

/// OOM kills of one cgroup's processes in one interval, with who the cgroup belonged to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OomKill {
    /// Host-global cgroup v2 path of the cgroup whose processes were killed.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = limits::MAX_CGROUP_PATH)))]
    pub cgroup_path: String,
    /// Processes killed in the interval (at least 1).
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = limits::MAX_INTEGER)))]
    pub count: u64,
    pub observed: OomObservation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_NAMESPACE)))]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_NAME)))]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_POD_UID)))]
    pub pod_uid: Option<String>,
    /// Container name inside the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_NAME)))]
    pub container: Option<String>,
    /// The owning Workload (label `stressmix.dev/workload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_NAME)))]
    pub workload: Option<String>,
    /// Stress kind (label `stressmix.dev/kind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_KIND)))]
    pub kind: Option<String>,
    /// The pod's slot in its Workload and kind (label `stressmix.dev/slot`): the slot's pods
    /// replace one another, so this is what stays the same across the victims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
}

/// Whole-node values of one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeReading {
    #[cfg_attr(feature = "schema", schemars(range(max = limits::MAX_INTEGER)))]
    pub memory_total_bytes: u64,
    #[cfg_attr(feature = "schema", schemars(range(max = limits::MAX_INTEGER)))]
    pub memory_free_bytes: u64,
    #[cfg_attr(feature = "schema", schemars(range(max = limits::MAX_INTEGER)))]
    pub memory_available_bytes: u64,
    #[cfg_attr(feature = "schema", schemars(range(max = limits::MAX_INTEGER)))]
    pub memory_used_bytes: u64,
    /// CPU busy time over the interval, percent of the whole node (0..=100).
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub cpu_percent: f64,
    /// Online CPUs.
    pub cpus: u32,
}

/// One cgroup's rates over the interval. `Default` is a reading of no cgroup, unattributed, all zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ContainerReading {
    /// Kernel cgroup id (inode of the cgroup directory), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(max = limits::MAX_INTEGER)))]
    pub cgroup_id: Option<u64>,
    /// Host-global cgroup v2 path.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = limits::MAX_CGROUP_PATH)))]
    pub cgroup_path: String,
    /// Container runtime id (64 hex), when the cgroup is a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_CONTAINER_ID)))]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_NAME)))]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_POD_UID)))]
    pub pod_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_NAMESPACE)))]
    pub namespace: Option<String>,
    /// Container name inside the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_NAME)))]
    pub container: Option<String>,
    /// The owning Workload (label `stressmix.dev/workload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_NAME)))]
    pub workload: Option<String>,
    /// Stress kind (label `stressmix.dev/kind`), or [`SYSTEM_KIND`] for other cgroups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = limits::MAX_KIND)))]
    pub kind: Option<String>,
    /// The pod's slot in its Workload and kind (label `stressmix.dev/slot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// CPU time over the interval, percent of one core (may exceed 100 with several threads).
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub cpu_percent: f64,
    /// The same, percent of the whole node (0..=100).
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub cpu_percent_node: f64,
    /// `memory.current`.
    #[cfg_attr(feature = "schema", schemars(range(max = limits::MAX_INTEGER)))]
    pub memory_bytes: u64,
    /// `memory_bytes` as percent of the node's RAM.
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub memory_percent: f64,
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub disk_read_bytes_per_sec: f64,
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub disk_write_bytes_per_sec: f64,
    /// Read plus write I/O operations (syscalls) per second.
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub io_ops_per_sec: f64,
    /// Percent of the interval in which at least one task waited for CPU (`cpu.pressure` some).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = limits::MAX_CONTENTION_VALUE)))]
    pub cpu_pressure_some_percent: Option<f64>,
    /// Percent of the interval in which all non-idle tasks waited for CPU at once (`full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = limits::MAX_CONTENTION_VALUE)))]
    pub cpu_pressure_full_percent: Option<f64>,
    /// The same for memory (`memory.pressure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = limits::MAX_CONTENTION_VALUE)))]
    pub memory_pressure_some_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = limits::MAX_CONTENTION_VALUE)))]
    pub memory_pressure_full_percent: Option<f64>,
    /// The same for I/O (`io.pressure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = limits::MAX_CONTENTION_VALUE)))]
    pub io_pressure_some_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = limits::MAX_CONTENTION_VALUE)))]
    pub io_pressure_full_percent: Option<f64>,
    /// Percent of the interval's CPU bandwidth periods (of `cpu.max`) in which the cgroup was
    /// throttled; `None` when it had no period with runnable tasks or no `cpu` controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = limits::MAX_CONTENTION_VALUE)))]
    pub cpu_throttled_periods_percent: Option<f64>,
    /// Time throttled per second of the interval (`cpu.stat throttled_usec`; summed over CPUs, so
    /// it can exceed 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = limits::MAX_CONTENTION_VALUE)))]
    pub cpu_throttled_seconds_per_sec: Option<f64>,
}

/// A field of a batch that breaks the rules; `field` is its path, e.g. `containers[3].cpu_percent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

fn check_number(field: &dyn Fn() -> String, value: f64) -> Result<(), ValidationError> {
    if !value.is_finite() {
        return Err(invalid(field(), "must be a finite number"));
    }
    if value < 0.0 {
        return Err(invalid(field(), "must not be negative"));
    }
    Ok(())
}

fn check_integer(field: &dyn Fn() -> String, value: u64) -> Result<(), ValidationError> {
    if value > limits::MAX_INTEGER {
        return Err(invalid(
            field(),
            format!("must be at most {}", limits::MAX_INTEGER),
        ));
    }
    Ok(())
}

fn check_text(
    field: &dyn Fn() -> String,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), ValidationError> {
    if required && value.is_empty() {
        return Err(invalid(field(), "must not be empty"));
    }
    if value.len() > max {
        return Err(invalid(field(), format!("must be at most {max} bytes")));
    }
    if value.contains('\0') {
        return Err(invalid(field(), "must not contain NUL characters"));
    }
    Ok(())
}

fn check_optional_text(
    field: &dyn Fn() -> String,
    value: Option<&str>,
    max: usize,
) -> Result<(), ValidationError> {
    match value {
        Some(v) => check_text(field, v, max, false),
        None => Ok(()),
    }
}

/// A UUID in its 8-4-4-4-12 hex text form (any case).
pub fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

impl ReadingBatch {
    /// Checks every field: finite non-negative numbers, integers that fit SQLite, bounded strings
    /// and counts, a UUID boot id, a plausible timestamp. The error names the first bad field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let name = |f: &'static str| move || f.to_string();
        check_text(
            &name("node_name"),
            &self.node_name,
            limits::MAX_NODE_NAME,
            true,
        )?;
        if !is_uuid(&self.boot_id) {
            return Err(invalid(
                "boot_id",
                "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
            ));
        }
        check_integer(&name("sequence"), self.sequence)?;
        check_optional_text(
            &name("source_reason"),
            self.source_reason.as_deref(),
            limits::MAX_SOURCE_REASON,
        )?;
        if self.timestamp_ms == 0 || self.timestamp_ms > limits::MAX_TIMESTAMP_MS {
            return Err(invalid(
                "timestamp_ms",
                format!(
                    "must be milliseconds since the Unix epoch, 1..={}",
                    limits::MAX_TIMESTAMP_MS
                ),
            ));
        }
        self.node.validate()?;
        if self.containers.len() > limits::MAX_CONTAINERS {
            return Err(invalid(
                "containers",
                format!("must have at most {} entries", limits::MAX_CONTAINERS),
            ));
        }
        for (i, c) in self.containers.iter().enumerate() {
            c.validate(i)?;
        }
        if self.oom_kills.len() > limits::MAX_CONTAINERS {
            return Err(invalid(
                "oom_kills",
                format!("must have at most {} entries", limits::MAX_CONTAINERS),
            ));
        }
        for (i, k) in self.oom_kills.iter().enumerate() {
            k.validate(i)?;
        }
        Ok(())
    }
}

impl NodeReading {
    fn validate(&self) -> Result<(), ValidationError> {
        let name = |f: &'static str| move || format!("node.{f}");
        check_integer(&name("memory_total_bytes"), self.memory_total_bytes)?;
        check_integer(&name("memory_free_bytes"), self.memory_free_bytes)?;
        check_integer(&name("memory_available_bytes"), self.memory_available_bytes)?;
        check_integer(&name("memory_used_bytes"), self.memory_used_bytes)?;
        check_number(&name("cpu_percent"), self.cpu_percent)?;
        Ok(())
    }
}

impl ContainerReading {
    fn validate(&self, index: usize) -> Result<(), ValidationError> {
        let name = |f: &'static str| move || format!("containers[{index}].{f}");
        if let Some(id) = self.cgroup_id {
            check_integer(&name("cgroup_id"), id)?;
        }
        check_text(
            &name("cgroup_path"),
            &self.cgroup_path,
            limits::MAX_CGROUP_PATH,
            true,
        )?;
        check_optional_text(
            &name("container_id"),
            self.container_id.as_deref(),
            limits::MAX_CONTAINER_ID,
        )?;
        check_optional_text(&name("pod"), self.pod.as_deref(), limits::MAX_NAME)?;
        check_optional_text(
            &name("pod_uid"),
            self.pod_uid.as_deref(),
            limits::MAX_POD_UID,
        )?;
        check_optional_text(
            &name("namespace"),
            self.namespace.as_deref(),
            limits::MAX_NAMESPACE,
        )?;
        check_optional_text(
            &name("container"),
            self.container.as_deref(),
            limits::MAX_NAME,
        )?;
        check_optional_text(
            &name("workload"),
            self.workload.as_deref(),
            limits::MAX_NAME,
        )?;
        check_optional_text(&name("kind"), self.kind.as_deref(), limits::MAX_KIND)?;
        check_number(&name("cpu_percent"), self.cpu_percent)?;
        check_number(&name("cpu_percent_node"), self.cpu_percent_node)?;
        check_integer(&name("memory_bytes"), self.memory_bytes)?;
        check_number(&name("memory_percent"), self.memory_percent)?;
        check_number(
            &name("disk_read_bytes_per_sec"),
            self.disk_read_bytes_per_sec,
        )?;
        check_number(
            &name("disk_write_bytes_per_sec"),
            self.disk_write_bytes_per_sec,
        )?;
        check_number(&name("io_ops_per_sec"), self.io_ops_per_sec)?;
        let optional = [
            ("cpu_pressure_some_percent", self.cpu_pressure_some_percent),
            ("cpu_pressure_full_percent", self.cpu_pressure_full_percent),
            (
                "memory_pressure_some_percent",
                self.memory_pressure_some_percent,
            ),
            (
                "memory_pressure_full_percent",
                self.memory_pressure_full_percent,
            ),
            ("io_pressure_some_percent", self.io_pressure_some_percent),
            ("io_pressure_full_percent", self.io_pressure_full_percent),
            (
                "cpu_throttled_periods_percent",
                self.cpu_throttled_periods_percent,
            ),
            (
                "cpu_throttled_seconds_per_sec",
                self.cpu_throttled_seconds_per_sec,
            ),
        ];
        for (field, value) in optional {
            if let Some(value) = value {
                check_number(&name(field), value)?;
                if value > limits::MAX_CONTENTION_VALUE {
                    return Err(invalid(
                        name(field)(),
                        format!("must be at most {}", limits::MAX_CONTENTION_VALUE),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl OomKill {
    fn validate(&self, index: usize) -> Result<(), ValidationError> {
        let name = |f: &'static str| move || format!("oom_kills[{index}].{f}");
        check_text(
            &name("cgroup_path"),
            &self.cgroup_path,
            limits::MAX_CGROUP_PATH,
            true,
        )?;
        if self.count == 0 {
            return Err(invalid(name("count")(), "must be at least 1"));
        }
        check_integer(&name("count"), self.count)?;
        let texts = [
            (
                "namespace",
                self.namespace.as_deref(),
                limits::MAX_NAMESPACE,
            ),
            ("pod", self.pod.as_deref(), limits::MAX_NAME),
            ("pod_uid", self.pod_uid.as_deref(), limits::MAX_POD_UID),
            ("container", self.container.as_deref(), limits::MAX_NAME),
            ("workload", self.workload.as_deref(), limits::MAX_NAME),
            ("kind", self.kind.as_deref(), limits::MAX_KIND),
        ];
        for (field, value, max) in texts {
            check_optional_text(&name(field), value, max)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/readings-batch.json");

    fn example() -> ReadingBatch {
        serde_json::from_str(EXAMPLE).expect("example batch parses")
    }

    #[test]
    fn example_batch_is_valid_and_round_trips() {
        let batch = example();
        batch.validate().expect("example is valid");
        assert_eq!(batch.source, ReadingSource::Module);
        assert!(batch.containers.len() >= 2);
        let text = serde_json::to_string(&batch).expect("serializes");
        let again: ReadingBatch = serde_json::from_str(&text).expect("parses again");
        assert_eq!(batch, again);
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let mut value: serde_json::Value = serde_json::from_str(EXAMPLE).expect("json");
        value["added_later"] = serde_json::json!(1);
        value["containers"][0]["added_later"] = serde_json::json!("x");
        let batch: ReadingBatch = serde_json::from_value(value).expect("still parses");
        batch.validate().expect("still valid");
    }

    #[test]
    fn errors_name_the_field_path() {
        let mut batch = example();
        batch.containers[1].cpu_percent = f64::NAN;
        let err = batch.validate().expect_err("NaN rejected");
        assert_eq!(err.field, "containers[1].cpu_percent");

        let mut batch = example();
        batch.containers[0].disk_write_bytes_per_sec = -1.0;
        assert_eq!(
            batch.validate().expect_err("negative").field,
            "containers[0].disk_write_bytes_per_sec"
        );

        let mut batch = example();
        batch.node.cpu_percent = f64::INFINITY;
        assert_eq!(batch.validate().expect_err("inf").field, "node.cpu_percent");

        let mut batch = example();
        batch.node.memory_total_bytes = u64::MAX;
        assert_eq!(
            batch.validate().expect_err("too big").field,
            "node.memory_total_bytes"
        );

        let mut batch = example();
        batch.containers[1].io_pressure_full_percent = Some(limits::MAX_CONTENTION_VALUE);
        batch.validate().expect("the largest storable value");
        batch.containers[1].io_pressure_full_percent = Some(limits::MAX_CONTENTION_VALUE * 10.0);
        assert_eq!(
            batch
                .validate()
                .expect_err("past what the store keeps")
                .field,
            "containers[1].io_pressure_full_percent"
        );
    }

    #[test]
    fn identity_and_bounds_are_checked() {
        let mut batch = example();
        batch.boot_id = "not-a-uuid".into();
        assert_eq!(batch.validate().expect_err("boot id").field, "boot_id");

        let mut batch = example();
        batch.node_name.clear();
        assert_eq!(batch.validate().expect_err("empty").field, "node_name");

        let mut batch = example();
        batch.timestamp_ms = 0;
        assert_eq!(batch.validate().expect_err("ts").field, "timestamp_ms");

        let mut batch = example();
        batch.sequence = u64::MAX;
        assert_eq!(batch.validate().expect_err("seq").field, "sequence");

        let mut batch = example();
        batch.source_reason = Some("r".repeat(limits::MAX_SOURCE_REASON + 1));
        assert_eq!(
            batch.validate().expect_err("long reason").field,
            "source_reason"
        );
        batch.source_reason = Some("no-headers: no kernel headers for 6.1.0-57-amd64".into());
        batch.validate().expect("a one-line reason is valid");

        let mut batch = example();
        batch.containers[1].pod = Some("p".repeat(limits::MAX_NAME + 1));
        assert_eq!(
            batch.validate().expect_err("long").field,
            "containers[1].pod"
        );

        let mut batch = example();
        let one = batch.containers[0].clone();
        batch.containers = vec![one; limits::MAX_CONTAINERS + 1];
        assert_eq!(batch.validate().expect_err("count").field, "containers");
    }

    #[test]
    fn uuid_check() {
        assert!(is_uuid("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(is_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
        assert!(!is_uuid("0f8fad5bd9cb469fa16570867728950e"));
        assert!(!is_uuid("0f8fad5b-d9cb-469f-a165-70867728950g"));
    }
}
