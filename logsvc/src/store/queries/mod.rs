//! The read side: Grafana Infinity shaped queries, one file per endpoint family. Every query
//! returns a JSON array of flat rows, sorted by time. This file holds the vocabulary the HTTP layer
//! parses requests into.

mod containers;
mod events;
mod json;
mod labels;
mod legacy;
mod nodes;
mod scan;
mod series;
mod snapshot;

pub use containers::container_samples;
pub use events::{oom_kill_counts, oom_kills};
pub use labels::label_values;
pub use legacy::legacy_data;
pub use nodes::{node_samples, pods_per_kind};
pub use snapshot::snapshot;

use stressmix_api::readings::ContainerReading;

use super::blob;

/// `[from, to]` in epoch ms, bucketed by `step` (buckets start at multiples of `step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeQuery {
    pub from: i64,
    pub to: i64,
    pub step: i64,
}

impl RangeQuery {
    fn bucket(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.step)
    }
}

/// A container metric column. Usage metrics come with every reading; contention metrics
/// (pressure and throttling) only from agents that read them, so a bucket may have none (null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    CpuPercent,
    CpuPercentNode,
    MemoryBytes,
    MemoryPercent,
    DiskReadBytesPerSec,
    DiskWriteBytesPerSec,
    IoOpsPerSec,
    CpuPressureSomePercent,
    CpuPressureFullPercent,
    MemoryPressureSomePercent,
    MemoryPressureFullPercent,
    IoPressureSomePercent,
    IoPressureFullPercent,
    CpuThrottledPeriodsPercent,
    CpuThrottledSecondsPerSec,
}

/// Usage and contention metrics together.
pub const METRICS: usize = blob::USAGE + blob::CONTENTION;

/// One container reading's values in `Metric::ALL` order, and how much each weighs (a raw
/// reading 1, or 0 where a contention value is absent; a rollup row the readings it holds).
pub type Values = [f64; METRICS];

impl Metric {
    /// Packed in `samples.readings`, in this order; the default columns of container queries.
    pub const USAGE: [Metric; blob::USAGE] = [
        Metric::CpuPercent,
        Metric::CpuPercentNode,
        Metric::MemoryBytes,
        Metric::MemoryPercent,
        Metric::DiskReadBytesPerSec,
        Metric::DiskWriteBytesPerSec,
        Metric::IoOpsPerSec,
    ];

    /// Packed in `samples_contention.entries`, in this order.
    pub const CONTENTION: [Metric; blob::CONTENTION] = [
        Metric::CpuPressureSomePercent,
        Metric::CpuPressureFullPercent,
        Metric::MemoryPressureSomePercent,
        Metric::MemoryPressureFullPercent,
        Metric::IoPressureSomePercent,
        Metric::IoPressureFullPercent,
        Metric::CpuThrottledPeriodsPercent,
        Metric::CpuThrottledSecondsPerSec,
    ];

    /// Usage, then contention: the order of [`Values`].
    pub const ALL: [Metric; METRICS] = {
        let mut all = [Metric::CpuPercent; METRICS];
        let mut k = 0;
        while k < METRICS {
            all[k] = if k < blob::USAGE {
                Metric::USAGE[k]
            } else {
                Metric::CONTENTION[k - blob::USAGE]
            };
            k += 1;
        }
        all
    };

    /// Column name in answers, the `metric=` value, and the batch field it comes from.
    pub fn name(self) -> &'static str {
        match self {
            Metric::CpuPercent => "cpu_percent",
            Metric::CpuPercentNode => "cpu_percent_node",
            Metric::MemoryBytes => "memory_bytes",
            Metric::MemoryPercent => "memory_percent",
            Metric::DiskReadBytesPerSec => "disk_read_bytes_per_sec",
            Metric::DiskWriteBytesPerSec => "disk_write_bytes_per_sec",
            Metric::IoOpsPerSec => "io_ops_per_sec",
            Metric::CpuPressureSomePercent => "cpu_pressure_some_percent",
            Metric::CpuPressureFullPercent => "cpu_pressure_full_percent",
            Metric::MemoryPressureSomePercent => "memory_pressure_some_percent",
            Metric::MemoryPressureFullPercent => "memory_pressure_full_percent",
            Metric::IoPressureSomePercent => "io_pressure_some_percent",
            Metric::IoPressureFullPercent => "io_pressure_full_percent",
            Metric::CpuThrottledPeriodsPercent => "cpu_throttled_periods_percent",
            Metric::CpuThrottledSecondsPerSec => "cpu_throttled_seconds_per_sec",
        }
    }

    /// What the column holds (the OpenAPI document's description and the `/metrics` help).
    pub fn description(self) -> &'static str {
        match self {
            Metric::CpuPercent => "CPU, percent of one core",
            Metric::CpuPercentNode => "CPU, percent of the whole node",
            Metric::MemoryBytes => "Memory in bytes (memory.current)",
            Metric::MemoryPercent => "Memory, percent of node RAM",
            Metric::DiskReadBytesPerSec => "Disk read, bytes per second",
            Metric::DiskWriteBytesPerSec => "Disk write, bytes per second",
            Metric::IoOpsPerSec => "Read plus write I/O operations per second",
            Metric::CpuPressureSomePercent => "Percent of time some task waited for CPU (PSI some)",
            Metric::CpuPressureFullPercent => "Percent of time all tasks waited for CPU (PSI full)",
            Metric::MemoryPressureSomePercent => {
                "Percent of time some task waited for memory (PSI some)"
            }
            Metric::MemoryPressureFullPercent => {
                "Percent of time all tasks waited for memory (PSI full)"
            }
            Metric::IoPressureSomePercent => "Percent of time some task waited for I/O (PSI some)",
            Metric::IoPressureFullPercent => "Percent of time all tasks waited for I/O (PSI full)",
            Metric::CpuThrottledPeriodsPercent => {
                "Percent of CPU bandwidth periods in which the cgroup was throttled"
            }
            Metric::CpuThrottledSecondsPerSec => "Seconds throttled per second (summed over CPUs)",
        }
    }

    /// The name of its `/metrics` gauge, after `stressmix_container_`.
    pub fn prometheus_name(self) -> &'static str {
        match self {
            Metric::DiskReadBytesPerSec => "disk_read_bytes_per_second",
            Metric::DiskWriteBytesPerSec => "disk_write_bytes_per_second",
            Metric::IoOpsPerSec => "io_operations_per_second",
            Metric::CpuThrottledSecondsPerSec => "cpu_throttled_seconds_per_second",
            other => other.name(),
        }
    }

    /// Its value in a reading; `None` when the agent did not send it.
    pub fn read(self, c: &ContainerReading) -> Option<f64> {
        Some(match self {
            Metric::CpuPercent => c.cpu_percent,
            Metric::CpuPercentNode => c.cpu_percent_node,
            Metric::MemoryBytes => c.memory_bytes as f64,
            Metric::MemoryPercent => c.memory_percent,
            Metric::DiskReadBytesPerSec => c.disk_read_bytes_per_sec,
            Metric::DiskWriteBytesPerSec => c.disk_write_bytes_per_sec,
            Metric::IoOpsPerSec => c.io_ops_per_sec,
            Metric::CpuPressureSomePercent => return c.cpu_pressure_some_percent,
            Metric::CpuPressureFullPercent => return c.cpu_pressure_full_percent,
            Metric::MemoryPressureSomePercent => return c.memory_pressure_some_percent,
            Metric::MemoryPressureFullPercent => return c.memory_pressure_full_percent,
            Metric::IoPressureSomePercent => return c.io_pressure_some_percent,
            Metric::IoPressureFullPercent => return c.io_pressure_full_percent,
            Metric::CpuThrottledPeriodsPercent => return c.cpu_throttled_periods_percent,
            Metric::CpuThrottledSecondsPerSec => return c.cpu_throttled_seconds_per_sec,
        })
    }

    /// Whole numbers are answered as integers.
    pub fn is_integer(self) -> bool {
        self == Metric::MemoryBytes
    }

    /// Stored in `samples_contention` (and in nullable rollup columns), not in every reading.
    pub fn is_contention(self) -> bool {
        self.index() >= blob::USAGE
    }

    pub fn parse(text: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == text)
    }

    /// Position in `Metric::ALL` and in [`Values`]; usage metrics first, as in the blobs.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The `samples_1m` columns of a metric: its sum, and for contention metrics the count of
/// readings that had it (usage metrics are in every reading, counted by `n`).
pub(crate) fn rollup_columns(metric: Metric) -> (String, Option<String>) {
    let usage = match metric {
        Metric::CpuPercent => "sum_cpu_percent",
        Metric::CpuPercentNode => "sum_cpu_percent_node",
        Metric::MemoryBytes => "sum_memory_bytes",
        Metric::MemoryPercent => "sum_memory_percent",
        Metric::DiskReadBytesPerSec => "sum_disk_read",
        Metric::DiskWriteBytesPerSec => "sum_disk_write",
        Metric::IoOpsPerSec => "sum_io_ops",
        contention => {
            return (
                format!("sum_{}", contention.name()),
                Some(format!("n_{}", contention.name())),
            );
        }
    };
    (usage.to_string(), None)
}

/// Every metric's `samples_1m` columns, in `Metric::ALL` order (a contention metric's sum, then
/// its count): what the rollup writes and the container query reads.
pub(crate) fn rollup_metric_columns() -> Vec<String> {
    let mut columns = Vec::new();
    for metric in Metric::ALL {
        let (sum, count) = rollup_columns(metric);
        columns.push(sum);
        columns.extend(count);
    }
    columns
}

/// A label column of container rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Node,
    Namespace,
    Pod,
    Container,
    Workload,
    Kind,
    Series,
}

impl Label {
    pub const ALL: [Label; 7] = [
        Label::Node,
        Label::Namespace,
        Label::Pod,
        Label::Container,
        Label::Workload,
        Label::Kind,
        Label::Series,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Label::Node => "node",
            Label::Namespace => "namespace",
            Label::Pod => "pod",
            Label::Container => "container",
            Label::Workload => "workload",
            Label::Kind => "kind",
            Label::Series => "series",
        }
    }

    /// What the column holds (the OpenAPI document's description).
    pub fn description(self) -> &'static str {
        match self {
            Label::Node => "Node name",
            Label::Namespace => "Pod namespace ('' for system cgroups)",
            Label::Pod => "Pod name",
            Label::Container => "Container name",
            Label::Workload => "Workload name",
            Label::Kind => "Stress kind, or system",
            Label::Series => "Series name: namespace/pod/container, or the cgroup path",
        }
    }

    pub fn parse(text: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.name() == text)
    }
}

/// Container samples: which series and which columns.
#[derive(Debug, Clone, Default)]
pub struct ContainerQuery {
    pub workloads: Vec<String>,
    pub kinds: Vec<String>,
    /// Series names (`namespace/pod/container`, or the cgroup path of system cgroups).
    pub containers: Vec<String>,
    pub nodes: Vec<String>,
    /// Only this column, named `value`; the usage metrics (`Metric::USAGE`) when `None`.
    pub metric: Option<Metric>,
    /// Label columns in each row; all of them when `None`.
    pub labels: Option<Vec<Label>>,
}

/// Events in `[from, to]` (epoch ms), filtered like container samples.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub from: i64,
    pub to: i64,
    pub namespaces: Vec<String>,
    pub workloads: Vec<String>,
    pub kinds: Vec<String>,
    pub nodes: Vec<String>,
}

fn matches(wanted: &[String], value: &str) -> bool {
    wanted.is_empty() || wanted.iter().any(|w| w == value)
}

/// Which label a variable lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    Workloads,
    Kinds,
    Containers,
    Nodes,
    Namespaces,
    Pods,
}

impl LabelKind {
    pub const ALL: [LabelKind; 6] = [
        LabelKind::Workloads,
        LabelKind::Kinds,
        LabelKind::Containers,
        LabelKind::Nodes,
        LabelKind::Namespaces,
        LabelKind::Pods,
    ];

    /// The path segment of `/api/v1/labels/{label}`.
    pub fn name(self) -> &'static str {
        match self {
            LabelKind::Workloads => "workloads",
            LabelKind::Kinds => "kinds",
            LabelKind::Containers => "containers",
            LabelKind::Nodes => "nodes",
            LabelKind::Namespaces => "namespaces",
            LabelKind::Pods => "pods",
        }
    }

    pub fn parse(text: &str) -> Option<LabelKind> {
        LabelKind::ALL.into_iter().find(|l| l.name() == text)
    }
}
