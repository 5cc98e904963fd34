//! What one stress run delivered, as the stress program reports it: one JSON line on stdout and the
//! container's termination message, which the operator reads back before it deletes the pod.

use serde::{Deserialize, Serialize};

/// The kubelet keeps at most this many bytes of a termination message.
pub const MAX_TERMINATION_MESSAGE: usize = 4096;

/// The summary of one run. Counters are the stressor's own; CPU and memory are the process's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The stressor: cpu, memory, io or disk.
    pub kind: String,
    /// Worker threads.
    pub workers: usize,
    /// Wall-clock seconds the run lasted.
    pub duration_seconds: f64,
    /// The run ended on SIGTERM or SIGINT rather than at its duration.
    pub stopped_by_signal: bool,
    /// User + system CPU seconds of the whole process.
    pub cpu_seconds: f64,
    /// VmRSS at the end of the run, before memory is released.
    pub resident_bytes: u64,
    /// Peak resident set of the process.
    pub max_resident_bytes: u64,
    /// Bytes allocated and touched (memory).
    pub held_bytes: u64,
    /// Bytes written (io, disk).
    pub bytes_written: u64,
    /// Bytes read back (disk).
    pub bytes_read: u64,
    /// write(2)/pwrite(2) calls issued by the stressor.
    pub write_syscalls: u64,
    /// read(2)/pread(2) calls issued by the stressor.
    pub read_syscalls: u64,
    /// fsync(2)/fdatasync(2) calls issued by the stressor.
    pub sync_syscalls: u64,
    /// Units of work completed: io = synced 4 KiB writes, disk = write/verify/delete rounds of a file.
    pub operations: u64,
}
