//! The one JSON line printed on stdout at the end of a run, and the process measurements in it.

use std::io;

use crate::Error;

/// What a stressor counted itself; the process-wide figures are added by [`Summary`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    /// Bytes allocated and touched (memory).
    pub held_bytes: u64,
    pub bytes_written: u64,
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

/// The run's summary: the contract with the operator, which reads it back as the termination message.
pub use stressmix_api::run_summary::RunSummary as Summary;

/// CPU seconds (user + system) and peak RSS bytes of this process so far.
pub fn process_usage() -> Result<(f64, u64), Error> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct we pass; we read it only when it reports success.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(Error::Measure {
            what: "process CPU time",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: rc == 0, so the kernel initialised it.
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    Ok((seconds(usage.ru_utime) + seconds(usage.ru_stime), max_rss))
}

/// Current VmRSS of this process in bytes.
pub fn resident_bytes() -> Result<u64, Error> {
    let measure = |source| Error::Measure {
        what: "resident memory (/proc/self/status VmRSS)",
        source,
    };
    let status = std::fs::read_to_string("/proc/self/status").map_err(measure)?;
    vm_rss(&status).ok_or_else(|| measure(io::Error::other("no VmRSS line")))
}

fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        assert_eq!(
            vm_rss("Name:\tx\nVmRSS:\t   2048 kB\nVmSwap:\t0 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn measures_this_process() {
        assert!(resident_bytes().expect("VmRSS") > 0);
        let (cpu, max_rss) = process_usage().expect("rusage");
        assert!(cpu >= 0.0 && max_rss > 0);
    }
}
