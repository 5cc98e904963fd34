//! The JSON document that the stressmix kernel module serves at `/proc/<proc_name>`
//! (default `/proc/stressmix`).
//!
//! One `open()` of the file takes one consistent snapshot; every `read()` on that file descriptor
//! returns bytes of that same snapshot. All counters are cumulative (they only grow while the
//! cgroup or process lives); consumers compute rates from two snapshots and their `timestamp`.
//!
//! # Strings: one byte per character
//!
//! Kernel strings (cgroup paths, process names, command-line arguments) are byte strings that need
//! not be UTF-8. The module escapes them so that every byte survives and the document is always
//! valid JSON (and pure ASCII):
//!
//! - bytes `0x20..=0x7e` other than `"` and `\` are written as they are;
//! - `"` is written `\"` and `\` is written `\\`;
//! - every other byte `b` (control bytes `< 0x20`, `0x7f`, and every byte `>= 0x80`, including each
//!   byte of valid multi-byte UTF-8) is written `\u00XX` with `XX` the byte's value in hex.
//!
//! After JSON decoding, a string therefore holds only characters `U+0000..=U+00FF`, each standing for
//! the byte of the same value (the Latin-1 mapping). [`KString::to_bytes`] recovers the original
//! bytes exactly; [`KString::to_string_lossy`] turns them into text for display, replacing
//! invalid UTF-8 with `U+FFFD`.
//!
//! # Versioning
//!
//! `schema_version` is [`SCHEMA_VERSION`]. Fields may be added without a version bump (the types
//! here ignore unknown fields); renaming or changing the meaning of a field bumps it. These types
//! read every version in [`SUPPORTED_SCHEMA_VERSIONS`]:
//!
//! - 1: usage (memory, CPU, tasks, I/O, main process);
//! - 2: adds per cgroup `pressure` (PSI stall totals) and `memory_events` (`memory.events`).
//!   In a version-1 document both are absent and read as `None`.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The schema version the module writes and these types describe.
pub const SCHEMA_VERSION: u32 = 2;

/// The schema versions these types read (see the module docs for what each adds).
pub const SUPPORTED_SCHEMA_VERSIONS: std::ops::RangeInclusive<u32> = 1..=SCHEMA_VERSION;

/// Default name of the /proc entry (`/proc/stressmix`).
pub const DEFAULT_PROC_NAME: &str = "stressmix";

/// One snapshot: the whole content of `/proc/<proc_name>` for one `open()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SCHEMA_VERSION`] of the module that wrote it; check with [`Snapshot::check_schema`].
    pub schema_version: u32,
    /// Version string of the module (`MODULE_VERSION`).
    pub module_version: KString,
    /// `uname -r` of the running kernel.
    pub kernel_release: KString,
    /// When the snapshot was taken.
    pub timestamp: Timestamp,
    /// Node-wide counters.
    pub system: System,
    /// Which cgroups are listed (module parameter `containers_only`).
    pub filter: CgroupFilter,
    /// One entry per online cgroup v2 cgroup below the root (the root itself is not listed), in
    /// pre-order: a parent always comes before its children.
    pub cgroups: Vec<Cgroup>,
    /// True when a bound was hit and the document is incomplete: more cgroups than the module's
    /// `max_cgroups`, or a path or command line longer than the module keeps (then that string is
    /// cut short). Everything that is listed is still correct.
    pub truncated: bool,
}

impl Snapshot {
    /// Fails when the document was written for a schema version these types do not read.
    pub fn check_schema(&self) -> Result<(), UnsupportedSchema> {
        if SUPPORTED_SCHEMA_VERSIONS.contains(&self.schema_version) {
            Ok(())
        } else {
            Err(UnsupportedSchema {
                found: self.schema_version,
            })
        }
    }
}

/// The document's `schema_version` is not the one these types describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedSchema {
    /// The version found in the document.
    pub found: u32,
}

impl fmt::Display for UnsupportedSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel module document has schema_version {}, this build reads {} to {}",
            self.found,
            SUPPORTED_SCHEMA_VERSIONS.start(),
            SUPPORTED_SCHEMA_VERSIONS.end()
        )
    }
}

impl std::error::Error for UnsupportedSchema {}

/// Two clocks read at the same moment, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Wall clock (`CLOCK_REALTIME`), ns since the Unix epoch. Can jump (NTP, settimeofday).
    pub wall_ns: u64,
    /// Boot clock (`CLOCK_BOOTTIME`), ns since boot including suspend. Monotonic: use it for rates.
    pub boot_ns: u64,
}

/// Node-wide counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub memory: SystemMemory,
    pub cpu: SystemCpu,
    pub load_average: LoadAverage,
}

/// Node memory in bytes (as `/proc/meminfo` computes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemMemory {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemFree`.
    pub free_bytes: u64,
    /// `MemAvailable`: what can be allocated without swapping.
    pub available_bytes: u64,
    /// `total_bytes - available_bytes`: memory that cannot be given back without swapping.
    pub used_bytes: u64,
}

/// Node CPU counts and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemCpu {
    /// CPUs online now.
    pub online: u32,
    /// CPUs that can ever be online (the per-state times sum over these).
    pub possible: u32,
    /// Time per state summed over all CPUs, ns (the `cpu` line of `/proc/stat`, in ns).
    pub time_ns: CpuStates,
}

/// Cumulative CPU time per state, ns, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStates {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuStates {
    /// All states but `guest` and `guest_nice` (those are already counted in `user`/`nice`).
    pub fn total(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
            .saturating_add(self.irq)
            .saturating_add(self.softirq)
            .saturating_add(self.steal)
    }

    /// Time not idle and not waiting for I/O.
    pub fn busy(&self) -> u64 {
        self.total()
            .saturating_sub(self.idle)
            .saturating_sub(self.iowait)
    }
}

/// Load average, as in `/proc/loadavg` (two decimals).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// Which cgroups the module lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupFilter {
    /// Every online cgroup below the root.
    All,
    /// Only cgroups whose last path component names a container: 64 hex digits, optionally as
    /// `<runtime>-<64 hex>.scope` (systemd driver: `cri-containerd-`, `crio-`, `docker-`).
    Containers,
}

/// One cgroup v2 cgroup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cgroup {
    /// The cgroup id (its cgroupfs directory inode number; what `name_to_handle_at` and BPF use).
    pub id: u64,
    /// Depth below the root: `/a` is 1, `/a/b` is 2.
    pub level: u32,
    /// Host-global path from the cgroup v2 root, starting with `/` (e.g.
    /// `/kubepods/burstable/pod<uid>/<container id>`).
    pub path: KString,
    /// `None` when the memory controller is not enabled for this cgroup (its parent's
    /// `cgroup.subtree_control` lacks `memory`).
    pub memory: Option<CgroupMemory>,
    pub cpu: CgroupCpu,
    pub tasks: CgroupTasks,
    pub io: CgroupIo,
    /// The oldest process in the cgroup (earliest start time); `None` when the cgroup has none.
    pub main_process: Option<MainProcess>,
    /// Pressure stall totals (schema 2). `None` in a version-1 document and when PSI is off for
    /// this cgroup (kernel booted with `psi=0`, or `0` written to its `cgroup.pressure`).
    #[serde(default)]
    pub pressure: Option<CgroupPressure>,
    /// `memory.events` (schema 2). `None` in a version-1 document and when `memory` is `None`.
    #[serde(default)]
    pub memory_events: Option<MemoryEvents>,
    /// CPU bandwidth throttling, as `cpu.stat` counts it. The module never writes it: the CFS
    /// bandwidth statistics live in the scheduler's private headers. The agent fills it from
    /// `cpu.stat` whichever source it reads; `None` when the cgroup has no `cpu` controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_throttling: Option<CpuThrottling>,
}

/// Cumulative pressure stall time of one cgroup per resource (what the `*.pressure` files print as
/// `total=`, here in ns).
///
/// The module reads the totals the kernel aggregates over CPUs (it may not take the mutex under
/// which reading a `*.pressure` file aggregates first); the kernel brings them up to date every 2 s
/// (its PSI averaging period) while the cgroup has running or stalled tasks, and whenever one of
/// the cgroup's `*.pressure` files is read. So they lag the files by at most that period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPressure {
    /// `cpu.pressure`.
    pub cpu: PressureTotals,
    /// `memory.pressure`.
    pub memory: PressureTotals,
    /// `io.pressure`.
    pub io: PressureTotals,
}

/// Stall time of one resource, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PressureTotals {
    /// Time at least one task of the cgroup was stalled on the resource (`some total=` x 1000).
    pub some_ns: u64,
    /// Time all non-idle tasks were stalled at once (`full total=` x 1000).
    pub full_ns: u64,
}

/// Memory events of a cgroup and its descendants (the fields of `memory.events`), counted since the
/// cgroup was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEvents {
    /// Times usage was reclaimed below `memory.low`.
    pub low: u64,
    /// Times usage went over `memory.high` and was throttled.
    pub high: u64,
    /// Times usage was about to go over `memory.max`.
    pub max: u64,
    /// Times the cgroup hit `memory.max` and reclaim failed (the OOM killer was invoked).
    pub oom: u64,
    /// Processes of the cgroup killed by the OOM killer.
    pub oom_kill: u64,
}

/// CPU bandwidth throttling (the `nr_periods`, `nr_throttled` and `throttled_usec` of `cpu.stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuThrottling {
    /// Enforcement periods (of `cpu.max`'s period) that had runnable tasks.
    pub nr_periods: u64,
    /// Periods in which the cgroup used up its quota and was throttled.
    pub nr_throttled: u64,
    /// Time the cgroup's tasks spent throttled, ns.
    pub throttled_ns: u64,
}

/// Memory of a cgroup, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMemory {
    /// Equals `memory.current`.
    pub current_bytes: u64,
    /// The high-water mark since the cgroup was created (`memory.peak`).
    pub peak_bytes: u64,
    /// `memory.max`; `None` (JSON `null`) for `max`, i.e. no limit.
    pub limit_bytes: Option<u64>,
}

/// CPU time consumed by the tasks attached directly to this cgroup (exited ones included), ns.
///
/// Not hierarchical: for a leaf cgroup (a container) `usage_ns` equals `cpu.stat usage_usec` x 1000;
/// for a parent, add its descendants' entries (time of already removed children is then missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupCpu {
    /// Exact scheduler runtime.
    pub usage_ns: u64,
    /// Time in user mode, sampled at scheduler ticks (so `user_ns + system_ns` is only close to
    /// `usage_ns`; `cpu.stat` scales its user/system to the exact sum, this document does not).
    pub user_ns: u64,
    /// Time in kernel mode, sampled at scheduler ticks.
    pub system_ns: u64,
}

/// Tasks attached directly to this cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupTasks {
    /// Thread-group leaders (processes), as `cgroup.procs` lists them.
    pub processes: u32,
    /// All threads, as `cgroup.threads` lists them.
    pub threads: u32,
}

/// Per-task I/O accounting (the fields of `/proc/<pid>/io`) summed over the processes attached to
/// this cgroup.
///
/// Each process counts its live threads, its exited threads and its reaped children (as
/// `/proc/<pid>/io` does). So the sums drop when a process exits whose parent is in another cgroup:
/// treat a decrease as a counter reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupIo {
    /// Bytes fetched from storage (`read_bytes`).
    pub read_bytes: u64,
    /// Bytes sent (or, for buffered writes, dirtied) towards storage (`write_bytes`).
    pub write_bytes: u64,
    /// Dirty bytes dropped before reaching storage, e.g. truncated files (`cancelled_write_bytes`).
    pub cancelled_write_bytes: u64,
    /// Bytes returned by read-like syscalls, from any file, pipe or socket (`rchar`).
    pub read_chars: u64,
    /// Bytes passed to write-like syscalls (`wchar`).
    pub write_chars: u64,
    /// Read-like syscalls (`syscr`).
    pub read_syscalls: u64,
    /// Write-like syscalls (`syscw`).
    pub write_syscalls: u64,
}

/// The process that stands for the cgroup (the container's init, for a container).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MainProcess {
    /// Process id in the initial pid namespace (as the host sees it).
    pub pid: u32,
    /// `comm` (at most 15 bytes).
    pub name: KString,
    /// The arguments (`/proc/<pid>/cmdline` split at NUL bytes). `None` when they could not be read
    /// without waiting (memory map locked, or pages not resident); empty for kernel threads.
    pub cmdline: Option<Vec<KString>>,
}

/// A kernel byte string carried in JSON with one character per byte (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KString(String);

impl KString {
    /// Wraps raw bytes (the inverse of [`KString::to_bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(bytes.iter().map(|&b| char::from(b)).collect())
    }

    /// The original bytes. Fails when the string holds a character above `U+00FF`, which the
    /// module never writes (a hand-made document might).
    pub fn to_bytes(&self) -> Result<Vec<u8>, NotByteString> {
        self.0
            .chars()
            .map(|c| u8::try_from(u32::from(c)).map_err(|_| NotByteString { found: c }))
            .collect()
    }

    /// The bytes as text: exact when they are UTF-8, `U+FFFD` for invalid sequences.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        if self.0.is_ascii() {
            return Cow::Borrowed(&self.0);
        }
        match self.to_bytes() {
            Ok(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
            // Not a byte string: it already is text.
            Err(_) => Cow::Borrowed(&self.0),
        }
    }

    /// The decoded JSON string itself (one character per byte).
    pub fn as_latin1(&self) -> &str {
        &self.0
    }
}

impl From<&str> for KString {
    /// The UTF-8 bytes of `text`.
    fn from(text: &str) -> Self {
        Self::from_bytes(text.as_bytes())
    }
}

impl fmt::Display for KString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

/// A [`KString`] held a character that is not a byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotByteString {
    /// The first such character.
    pub found: char,
}

impl fmt::Display for NotByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel string holds {:?} (U+{:04X}), above U+00FF: not a byte",
            self.found,
            u32::from(self.found)
        )
    }
}

impl std::error::Error for NotByteString {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_kstring() {
        let raw: Vec<u8> = (0u8..=255).collect();
        let k = KString::from_bytes(&raw);
        assert_eq!(k.to_bytes().unwrap(), raw);
    }

    #[test]
    fn escaped_utf8_decodes_to_text() {
        // "é" is C3 A9 in UTF-8; the module writes each byte as \u00XX.
        let k: KString = serde_json::from_str(r#""caf\u00c3\u00a9 \"x\"""#).unwrap();
        assert_eq!(k.to_bytes().unwrap(), "café \"x\"".as_bytes());
        assert_eq!(k.to_string_lossy(), "café \"x\"");
        assert_eq!(KString::from("café \"x\""), k);
    }

    #[test]
    fn invalid_utf8_is_lossy_as_text_but_exact_as_bytes() {
        let k: KString = serde_json::from_str(r#""a\u00ffb""#).unwrap();
        assert_eq!(k.to_bytes().unwrap(), b"a\xffb");
        assert_eq!(k.to_string_lossy(), "a\u{fffd}b");
    }

    #[test]
    fn characters_above_ff_are_refused_as_bytes() {
        let k: KString = serde_json::from_str(r#""\u0100""#).unwrap();
        assert_eq!(k.to_bytes().unwrap_err().found, '\u{100}');
    }

    #[test]
    fn schema_check() {
        let mut s: Snapshot =
            serde_json::from_str(include_str!("../tests/fixtures/kmod/handwritten-v1.json"))
                .unwrap();
        assert!(s.check_schema().is_ok());
        assert!(
            s.cgroups
                .iter()
                .all(|c| c.pressure.is_none() && c.memory_events.is_none())
        );
        s.schema_version = 2;
        assert!(s.check_schema().is_ok());
        s.schema_version = 3;
        assert_eq!(s.check_schema().unwrap_err().found, 3);
        s.schema_version = 0;
        assert_eq!(s.check_schema().unwrap_err().found, 0);
    }
}
