//! Node-wide counters from procfs, for the cgroupfs fallback: the same numbers the module reports.

use std::path::Path;

use stressmix_api::kmod::{CpuStates, LoadAverage, SystemCpu, SystemMemory, Timestamp};

/// Memory from `meminfo` text (values in kB).
pub fn parse_meminfo(text: &str) -> SystemMemory {
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb.saturating_mul(1024))
    };
    let total = field("MemTotal");
    let available = field("MemAvailable");
    SystemMemory {
        total_bytes: total,
        free_bytes: field("MemFree"),
        available_bytes: available,
        used_bytes: total.saturating_sub(available),
    }
}

/// CPU states from `/proc/stat` text (`cpu` line, in clock ticks) and the online CPU count
/// (one `cpuN` line per online CPU).
pub fn parse_stat(text: &str, ns_per_tick: u64) -> SystemCpu {
    let mut states = [0u64; 10];
    let mut online = 0u32;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("cpu") => {
                for (slot, word) in states.iter_mut().zip(words) {
                    *slot = word.parse::<u64>().unwrap_or(0).saturating_mul(ns_per_tick);
                }
            }
            Some(w) if w.starts_with("cpu") => online += 1,
            _ => {}
        }
    }
    let [
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    ] = states;
    SystemCpu {
        online: online.max(1),
        possible: online.max(1),
        time_ns: CpuStates {
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
            guest,
            guest_nice,
        },
    }
}

pub fn parse_loadavg(text: &str) -> LoadAverage {
    let mut words = text
        .split_whitespace()
        .map(|w| w.parse::<f64>().unwrap_or(0.0));
    LoadAverage {
        one: words.next().unwrap_or(0.0),
        five: words.next().unwrap_or(0.0),
        fifteen: words.next().unwrap_or(0.0),
    }
}

/// Nanoseconds per `USER_HZ` tick.
pub fn ns_per_tick() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        1_000_000_000 / u64::try_from(hz).unwrap_or(100)
    } else {
        10_000_000
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Wall and boot clocks now, as the module stamps its snapshots.
pub fn now() -> Timestamp {
    Timestamp {
        wall_ns: clock_ns(libc::CLOCK_REALTIME),
        boot_ns: clock_ns(libc::CLOCK_BOOTTIME),
    }
}

/// Read a small file; a missing one reads as empty (a fake procfs need not have every file).
pub fn read_or_empty(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let m = parse_meminfo(
            "MemTotal:       2048 kB\nMemFree:        1024 kB\nMemAvailable:   1536 kB\nBuffers: 1 kB\n",
        );
        assert_eq!(m.total_bytes, 2048 * 1024);
        assert_eq!(m.free_bytes, 1024 * 1024);
        assert_eq!(m.available_bytes, 1536 * 1024);
        assert_eq!(m.used_bytes, 512 * 1024);
    }

    #[test]
    fn stat_converts_ticks_and_counts_cpus() {
        let text = "cpu  100 2 30 400 5 6 7 8 9 10\ncpu0 50 1 15 200 2 3 3 4 4 5\ncpu1 50 1 15 200 3 3 4 4 5 5\nintr 1\n";
        let cpu = parse_stat(text, 10_000_000);
        assert_eq!(cpu.online, 2);
        assert_eq!(cpu.time_ns.user, 1_000_000_000);
        assert_eq!(cpu.time_ns.idle, 4_000_000_000);
        assert_eq!(cpu.time_ns.guest_nice, 100_000_000);
    }

    #[test]
    fn loadavg_and_clocks() {
        let l = parse_loadavg("0.50 0.25 0.10 1/100 42\n");
        assert_eq!((l.one, l.five, l.fifteen), (0.5, 0.25, 0.1));
        let t = now();
        assert!(t.wall_ns > 1_600_000_000_000_000_000 && t.boot_ns > 0);
        assert!(ns_per_tick() > 0);
    }
}
