//! The `Workload` custom resource (`stressmix.dev/v1alpha1`): a declared mix of stress pods that the
//! operator keeps running.
//!
//! Every field's doc comment becomes its `kubectl explain` text. The CEL rules
//! (`x-kubernetes-validations`) reject nonsense at admission with a message naming the field; the
//! same rules run locally in `api/tests/cel_rules.rs`. Quantities and lists carry `maxLength` /
//! `maxItems` because the API server refuses rules whose estimated cost is unbounded.

pub mod quantity;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every stressmix resource.
pub const GROUP: &str = "stressmix.dev";
pub use crate::labels::{
    LABEL_KIND, LABEL_MANAGED_BY, LABEL_SLOT, LABEL_TEMPLATE_HASH, LABEL_WORKLOAD, MANAGED_BY,
};

/// Upper bound of `replicas` for one kind (the CEL rule on `MixEntry::replicas` repeats it).
pub const MAX_REPLICAS_PER_KIND: i32 = 100;
/// Upper bound of the sum of `replicas` over all kinds of one Workload (the CEL rule on
/// `WorkloadSpec::mix` repeats it). Below 4 × [`MAX_REPLICAS_PER_KIND`] so the cap really binds:
/// with at most four kinds of at most 100 pods, a cap of 400 or more could never be reached.
pub const MAX_REPLICAS_TOTAL: i32 = 300;
/// Default CPU limit of a stress container (what the original project ran with).
pub const DEFAULT_CPU_LIMIT: &str = "100m";
/// Default memory limit of a stress container (what the original project ran with).
pub const DEFAULT_MEMORY_LIMIT: &str = "128Mi";
/// Default `sizeLimit` of the `/scratch` emptyDir.
pub const DEFAULT_SCRATCH_SIZE: &str = "1Gi";
/// Default length of one stress run, in seconds.
pub const DEFAULT_DURATION_SECONDS: i64 = 30;
/// Default age at which a stress pod is recycled, in seconds.
pub const DEFAULT_LIFETIME_SECONDS: i64 = 150;

/// A declared mix of stress pods. The operator keeps `replicas` pods of every listed kind running,
/// replaces each one when its run ends or it grows older than `lifetimeSeconds`, and reports progress
/// in `status`.
// Clippy mistakes the repeated `type_ = "integer"` of two printcolumn(...) groups for one attribute given twice.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "stressmix.dev",
    version = "v1alpha1",
    kind = "Workload",
    plural = "workloads",
    singular = "workload",
    shortname = "wl",
    namespaced,
    status = "WorkloadStatus",
    printcolumn(
        name = "Desired",
        type_ = "integer",
        description = "Pods the Workload asks for, all kinds together",
        json_path = ".status.desired"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        description = "Pods that are ready",
        json_path = ".status.ready"
    ),
    printcolumn(
        name = "Runs",
        type_ = "integer",
        description = "Stress runs that completed, all kinds together",
        json_path = ".status.completedRuns"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        description = "Stress runs that failed, all kinds together",
        json_path = ".status.failedRuns"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        description = "Reason of the Ready condition",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new(
        "self.mix.all(m, m.kind != 'memory' || !has(m.bytes) || !has(self.template.resources.limits) || !has(self.template.resources.limits.memory) || !isQuantity(string(m.bytes)) || !isQuantity(string(self.template.resources.limits.memory)) || quantity(string(m.bytes)).isLessThan(quantity(string(self.template.resources.limits.memory))))"
    ).message("spec.mix[kind=memory].bytes must be below spec.template.resources.limits.memory (the container needs room besides the stressed bytes)"),
    validation = Rule::new(
        "self.mix.all(m, m.kind != 'disk' || !has(m.bytes) || !isQuantity(string(m.bytes)) || !isQuantity(string(self.template.scratchSizeLimit)) || quantity(string(m.bytes)).compareTo(quantity(string(self.template.scratchSizeLimit))) <= 0)"
    ).message("spec.mix[kind=disk].bytes must not exceed spec.template.scratchSizeLimit (the emptyDir the disk stressor writes into)"),
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// When true the operator deletes every pod of this Workload and keeps the object; set it back to
    /// false to bring the pods back.
    #[serde(default)]
    pub suspend: bool,

    /// The stressors to run: one entry per kind (cpu, memory, io, disk), each kind at most once.
    #[x_kube(
        validation = Rule::new("size(self) >= 1").message("spec.mix must list at least one stressor kind"),
        validation = Rule::new("self.all(a, self.exists_one(b, b.kind == a.kind))").message("spec.mix lists a kind more than once: each of cpu, memory, io, disk may appear at most once"),
        validation = Rule::new("self.map(m, m.replicas).sum() <= 300").message("spec.mix: the replicas of all kinds add up to more than 300 pods for one Workload"),
    )]
    #[schemars(length(max = 4))]
    pub mix: Vec<MixEntry>,

    /// Settings every pod of this Workload gets.
    #[serde(default)]
    pub template: WorkloadTemplate,
}

/// The stressor a pod runs.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum StressKind {
    /// Busy loops: `workers` threads, each busy `load` percent of the time.
    Cpu,
    /// Holds `bytes` of touched, resident memory.
    Memory,
    /// Small synced writes into the scratch directory.
    Io,
    /// Writes, fsyncs, reads back and deletes `bytes` of files in the scratch directory.
    Disk,
}

impl StressKind {
    /// Every kind, in the order pods are named and reported.
    pub const ALL: [StressKind; 4] = [Self::Cpu, Self::Memory, Self::Io, Self::Disk];

    /// The lowercase name used in pod names, labels and the stress program's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Io => "io",
            Self::Disk => "disk",
        }
    }

    /// The kind named `name` (as in [`StressKind::as_str`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the stressor writes into the scratch directory.
    pub fn uses_scratch(self) -> bool {
        matches!(self, Self::Io | Self::Disk)
    }
}

impl std::fmt::Display for StressKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stressor kind of the mix: how many pods run it and its knobs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.kind == 'cpu' || !has(self.load)").message("spec.mix[].load applies only to kind cpu"),
    validation = Rule::new("!(self.kind in ['memory', 'disk']) || has(self.bytes)").message("spec.mix[].bytes is required for kinds memory and disk"),
    validation = Rule::new("self.kind in ['memory', 'disk'] || !has(self.bytes)").message("spec.mix[].bytes applies only to kinds memory and disk"),
)]
#[serde(rename_all = "camelCase")]
pub struct MixEntry {
    /// The stressor: cpu, memory, io or disk.
    pub kind: StressKind,

    /// How many pods of this kind to keep running (0 to 100; all kinds together at most 300).
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("spec.mix[].replicas must be between 0 and 100"))]
    pub replicas: i32,

    /// Worker threads of the stress program in each pod (1 to 64).
    #[serde(default = "default_workers")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 64").message("spec.mix[].workers must be between 1 and 64"))]
    pub workers: i32,

    /// cpu only: percent of the time each worker is busy (1 to 100). Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("spec.mix[].load must be a percentage between 1 and 100"))]
    pub load: Option<i32>,

    /// memory and disk only (required there): bytes to hold resident (memory) or to write per round
    /// (disk), as a quantity such as 100Mi. Memory bytes must stay below the memory limit; disk bytes
    /// must fit in `template.scratchSizeLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("isQuantity(string(self))").message("spec.mix[].bytes must be a quantity such as 100Mi"),
        validation = Rule::new("!isQuantity(string(self)) || quantity(string(self)).isGreaterThan(quantity('0'))").message("spec.mix[].bytes must be greater than zero"),
    )]
    #[schemars(extend("maxLength" = 64))]
    pub bytes: Option<Quantity>,
}

fn default_workers() -> i32 {
    1
}

/// Settings every pod of the Workload gets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.durationSeconds <= self.lifetimeSeconds").message("spec.template.durationSeconds must not exceed spec.template.lifetimeSeconds (the pod would be recycled before its run ends)"),
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadTemplate {
    /// Container image holding `/usr/local/bin/stressmix-stress`. Default: the operator's
    /// `--default-image` (the project's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("spec.template.image must not be empty when set"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,

    /// Resource limits of the stress container; requests are set equal to them. Limits are
    /// mandatory so a stress pod can never take its node down. Default: cpu 100m, memory 128Mi.
    #[serde(default)]
    pub resources: WorkloadResources,

    /// Length of one stress run in seconds (0 to 86400; 0 runs until the pod is recycled). After a
    /// run the pod exits and the operator replaces it.
    #[serde(default = "default_duration")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 86400").message("spec.template.durationSeconds must be between 0 and 86400"))]
    pub duration_seconds: i64,

    /// Age in seconds at which a pod is deleted and replaced, whatever it is doing (1 to 604800).
    #[serde(default = "default_lifetime")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 604800").message("spec.template.lifetimeSeconds must be between 1 and 604800"))]
    pub lifetime_seconds: i64,

    /// `sizeLimit` of the emptyDir mounted at /scratch, where the io and disk stressors write.
    /// Default 1Gi.
    #[serde(default = "default_scratch")]
    #[x_kube(
        validation = Rule::new("isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))").message("spec.template.scratchSizeLimit must be a quantity greater than zero"),
    )]
    #[schemars(extend("maxLength" = 64))]
    pub scratch_size_limit: Quantity,

    /// Node labels a node must have to run the pods (as a pod's `nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the pods (as a pod's `tolerations`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<Toleration>,
}

impl Default for WorkloadTemplate {
    fn default() -> Self {
        Self {
            image: None,
            resources: WorkloadResources::default(),
            duration_seconds: DEFAULT_DURATION_SECONDS,
            lifetime_seconds: DEFAULT_LIFETIME_SECONDS,
            scratch_size_limit: default_scratch(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
        }
    }
}

fn default_duration() -> i64 {
    DEFAULT_DURATION_SECONDS
}

fn default_lifetime() -> i64 {
    DEFAULT_LIFETIME_SECONDS
}

fn default_scratch() -> Quantity {
    Quantity(DEFAULT_SCRATCH_SIZE.to_owned())
}

/// Compute resources of the stress container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.limits)").message("spec.template.resources.limits is required: stress pods must be bounded"),
)]
pub struct WorkloadResources {
    /// Upper bounds of the container (cpu and memory both required); requests equal them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceLimits>,
}

impl Default for WorkloadResources {
    fn default() -> Self {
        Self {
            limits: Some(ResourceLimits::default()),
        }
    }
}

/// CPU and memory limits of the stress container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.cpu)").message("spec.template.resources.limits.cpu is required"),
    validation = Rule::new("has(self.memory)").message("spec.template.resources.limits.memory is required"),
)]
pub struct ResourceLimits {
    /// CPU limit, e.g. 100m or 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))").message("spec.template.resources.limits.cpu must be a quantity greater than zero"),
    )]
    #[schemars(extend("maxLength" = 64))]
    pub cpu: Option<Quantity>,

    /// Memory limit, e.g. 128Mi (at least 4Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))").message("spec.template.resources.limits.memory must be a quantity greater than zero"),
        validation = Rule::new("!isQuantity(string(self)) || quantity(string(self)).compareTo(quantity('4Mi')) >= 0").message("spec.template.resources.limits.memory must be at least 4Mi"),
    )]
    #[schemars(extend("maxLength" = 64))]
    pub memory: Option<Quantity>,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            cpu: Some(Quantity(DEFAULT_CPU_LIMIT.to_owned())),
            memory: Some(Quantity(DEFAULT_MEMORY_LIMIT.to_owned())),
        }
    }
}

/// What the operator observed, written after every reconcile that changed it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Pods the spec asks for, all kinds together (0 while suspended).
    #[serde(default)]
    pub desired: i32,

    /// Pods that are ready, all kinds together.
    #[serde(default)]
    pub ready: i32,

    /// Stress runs that completed (exit code 0), all kinds together.
    #[serde(default)]
    pub completed_runs: i64,

    /// Stress runs that failed, all kinds together.
    #[serde(default)]
    pub failed_runs: i64,

    /// Pod counts, runs and what they delivered, per stressor kind (keys: cpu, memory, io, disk).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, KindStatus>,

    /// `Ready` (every desired pod ready), `Progressing` (pods being created, replaced or removed) and
    /// `Degraded` (something blocks the desired state: failing pods, a pod stuck terminating), each
    /// with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Pod counts of one stressor kind, its runs and what they delivered.
///
/// A run is counted once, when the operator deletes its finished pod (so runs survive operator
/// restarts in this status; a run whose pod someone else deleted first is not counted).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KindStatus {
    /// Pods of this kind the spec asks for.
    pub desired: i32,
    /// Pods whose Ready condition is true.
    pub ready: i32,
    /// Pods in phase Running.
    pub running: i32,
    /// Pods in phase Pending (including unscheduled ones).
    pub pending: i32,
    /// Pods in phase Failed still present.
    pub failed: i32,
    /// Runs that completed (the stress container exited 0).
    #[serde(default)]
    pub completed_runs: i64,
    /// Runs that failed, by reason: the container's (OOMKilled, Error, ContainerCannotRun...) or,
    /// when no container ended, the pod's (Evicted, DeadlineExceeded...). At most 8 reasons; the
    /// rest count under `Other`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 8))]
    pub failed_runs: BTreeMap<String, i64>,
    /// The most recent failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<RunFailure>,
    /// When the most recent completed run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completion_time: Option<Time>,
    /// What the recent completed runs delivered, from each run's own summary (its termination
    /// message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<Delivered>,
}

/// One failed run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunFailure {
    /// The pod that ran it (deleted since).
    pub pod: String,
    /// Why it failed (OOMKilled, Error, Evicted...).
    pub reason: String,
    /// The stress container's exit code, when it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The container's termination message or the pod's message, cut to 1024 bytes.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub message: String,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// What completed runs of one kind delivered: an average weighted toward the most recent runs
/// (each run weighs 1/5 against the average of those before it).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivered {
    /// Completed runs whose summary went into the average.
    pub runs: i64,
    /// cpu: CPU seconds per second of run (cores); memory: bytes held; io: synced writes per
    /// second; disk: bytes written per second.
    pub value: f64,
    /// `cores`, `bytes`, `ops/s` or `bytes/s`.
    pub unit: String,
    /// What the spec asks for in the same unit, where it says: cpu its CPU limit, memory `bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<f64>,
    /// `value / requested` (1.0 = exactly as asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

/// Condition type: every desired pod is ready.
pub const CONDITION_READY: &str = "Ready";
/// Condition type: pods are being created, replaced or removed.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: something keeps the Workload from its desired state.
pub const CONDITION_DEGRADED: &str = "Degraded";

impl WorkloadSpec {
    /// The mix entry for `kind`, if the spec lists it.
    pub fn entry(&self, kind: StressKind) -> Option<&MixEntry> {
        self.mix.iter().find(|m| m.kind == kind)
    }

    /// Pods of `kind` the operator should keep (0 while suspended or when the kind is not listed).
    pub fn desired_replicas(&self, kind: StressKind) -> i32 {
        if self.suspend {
            return 0;
        }
        self.entry(kind).map_or(0, |m| m.replicas.max(0))
    }
}
