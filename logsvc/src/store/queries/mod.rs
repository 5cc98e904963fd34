//! The read side: Grafana Infinity shaped queries, one file per endpoint family. Every query
//! returns a JSON array of flat rows, sorted by time. This file holds the vocabulary the HTTP layer
//! parses requests into.

mod containers;
mod json;
mod labels;
mod legacy;
mod nodes;
mod scan;
mod series;
mod snapshot;

pub use containers::container_samples;
pub use labels::label_values;
pub use legacy::legacy_data;
pub use nodes::{node_samples, pods_per_kind};
pub use snapshot::snapshot;

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

/// A container metric column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    CpuPercent,
    CpuPercentNode,
    MemoryBytes,
    MemoryPercent,
    DiskReadBytesPerSec,
    DiskWriteBytesPerSec,
    IoOpsPerSec,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::CpuPercent,
        Metric::CpuPercentNode,
        Metric::MemoryBytes,
        Metric::MemoryPercent,
        Metric::DiskReadBytesPerSec,
        Metric::DiskWriteBytesPerSec,
        Metric::IoOpsPerSec,
    ];

    /// Column name in answers and in the raw table.
    pub fn name(self) -> &'static str {
        match self {
            Metric::CpuPercent => "cpu_percent",
            Metric::CpuPercentNode => "cpu_percent_node",
            Metric::MemoryBytes => "memory_bytes",
            Metric::MemoryPercent => "memory_percent",
            Metric::DiskReadBytesPerSec => "disk_read_bytes_per_sec",
            Metric::DiskWriteBytesPerSec => "disk_write_bytes_per_sec",
            Metric::IoOpsPerSec => "io_ops_per_sec",
        }
    }

    /// What the column holds (the OpenAPI document's description).
    pub fn description(self) -> &'static str {
        match self {
            Metric::CpuPercent => "CPU, percent of one core",
            Metric::CpuPercentNode => "CPU, percent of the whole node",
            Metric::MemoryBytes => "Memory in bytes (memory.current)",
            Metric::MemoryPercent => "Memory, percent of node RAM",
            Metric::DiskReadBytesPerSec => "Disk read, bytes per second",
            Metric::DiskWriteBytesPerSec => "Disk write, bytes per second",
            Metric::IoOpsPerSec => "Read plus write I/O operations per second",
        }
    }

    /// Whole numbers are answered as integers.
    pub fn is_integer(self) -> bool {
        self == Metric::MemoryBytes
    }

    pub fn parse(text: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == text)
    }

    /// Position in a packed entry (`blob::Entry::values`) and in `Metric::ALL`.
    fn index(self) -> usize {
        self as usize
    }
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
    /// Only this column, named `value`; all metric columns when `None`.
    pub metric: Option<Metric>,
    /// Label columns in each row; all of them when `None`.
    pub labels: Option<Vec<Label>>,
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
