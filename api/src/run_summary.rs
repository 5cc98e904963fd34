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
    /// User + system CPU seconds the process used during the run (the time `duration_seconds`
    /// covers), so CPU spent before it (runtime setup before exec, program start) is not counted.
    pub cpu_seconds: f64,
    /// VmRSS at the end of the run, before memory is released.
    pub resident_bytes: u64,
    /// Peak resident set of the process.
    pub max_resident_bytes: u64,
    /// What the stressor counted itself.
    #[serde(flatten)]
    pub consumed: Consumed,
}

/// What a stressor counted itself; the process-wide figures are added by [`RunSummary`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumed {
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

impl std::ops::Add for Consumed {
    type Output = Consumed;
    fn add(self, o: Consumed) -> Consumed {
        Consumed {
            held_bytes: self.held_bytes + o.held_bytes,
            bytes_written: self.bytes_written + o.bytes_written,
            bytes_read: self.bytes_read + o.bytes_read,
            write_syscalls: self.write_syscalls + o.write_syscalls,
            read_syscalls: self.read_syscalls + o.read_syscalls,
            sync_syscalls: self.sync_syscalls + o.sync_syscalls,
            operations: self.operations + o.operations,
        }
    }
}

impl std::iter::Sum for Consumed {
    fn sum<I: Iterator<Item = Consumed>>(iter: I) -> Consumed {
        iter.fold(Consumed::default(), |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary is one flat JSON object: the stressor's counters sit beside the process figures.
    #[test]
    fn the_summary_is_flat_and_reads_back() {
        let summary = RunSummary {
            kind: "disk".into(),
            workers: 2,
            duration_seconds: 30.0,
            stopped_by_signal: false,
            cpu_seconds: 1.5,
            resident_bytes: 10,
            max_resident_bytes: 12,
            consumed: Consumed {
                bytes_written: 4096,
                operations: 1,
                ..Consumed::default()
            },
        };
        let json = serde_json::to_value(&summary).expect("json");
        assert_eq!(json["bytes_written"], 4096);
        assert_eq!(json["operations"], 1);
        assert!(json.get("consumed").is_none());
        let back: RunSummary = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, summary);
    }
}
