//! The one JSON line printed on stdout at the end of a run, and the process measurements in it.

use std::io;

use crate::Error;

/// The run's summary and what a stressor counted itself: the contract with the operator, which reads
/// the summary back as the termination message.
pub use stressmix_api::run_summary::{Consumed, RunSummary as Summary};

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
