//! The contention counters of one cgroup as its cgroupfs files show them: pressure stall totals
//! (`cpu.pressure`, `memory.pressure`, `io.pressure`), `memory.events` and the throttling lines
//! of `cpu.stat`. The cgroupfs fallback reads all of them; with the module the agent reads
//! `cpu.stat` for throttling (the module cannot reach it) and, from a module of schema 1, the rest.

use std::io;
use std::path::Path;

use stressmix_api::kmod::{CgroupPressure, CpuThrottling, MemoryEvents, PressureTotals, Snapshot};
use stressmix_api::readings::{FieldSources, ReadingSource};

/// `<key> <value>` lines (`cpu.stat`, `memory.events`); lines that do not parse are skipped.
pub fn keyed_values(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        let key = words.next()?;
        let value = words.next()?.parse().ok()?;
        Some((key, value))
    })
}

/// The `total=` (µs) of the `some` and `full` lines of a `*.pressure` file, in ns. A missing `full`
/// line (cgroup `cpu.pressure` before Linux 5.13) reads as 0; `None` without a `some` line.
pub fn parse_pressure(text: &str) -> Option<PressureTotals> {
    let total = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|rest| {
                rest.split_whitespace()
                    .find_map(|pair| pair.strip_prefix("total="))
            })
            .and_then(|us| us.parse::<u64>().ok())
            .map(|us| us.saturating_mul(1000))
    };
    Some(PressureTotals {
        some_ns: total("some ")?,
        full_ns: total("full ").unwrap_or(0),
    })
}

/// `memory.events`; `None` when it has none of the five counters.
pub fn parse_memory_events(text: &str) -> Option<MemoryEvents> {
    let mut events = MemoryEvents {
        low: 0,
        high: 0,
        max: 0,
        oom: 0,
        oom_kill: 0,
    };
    let mut seen = false;
    for (key, value) in keyed_values(text) {
        let field = match key {
            "low" => &mut events.low,
            "high" => &mut events.high,
            "max" => &mut events.max,
            "oom" => &mut events.oom,
            "oom_kill" => &mut events.oom_kill,
            _ => continue,
        };
        *field = value;
        seen = true;
    }
    seen.then_some(events)
}

/// The bandwidth lines of `cpu.stat`; `None` when it has none (no `cpu` controller).
pub fn parse_cpu_throttling(text: &str) -> Option<CpuThrottling> {
    let (mut periods, mut throttled, mut usec) = (None, None, None);
    for (key, value) in keyed_values(text) {
        match key {
            "nr_periods" => periods = Some(value),
            "nr_throttled" => throttled = Some(value),
            "throttled_usec" => usec = Some(value),
            _ => {}
        }
    }
    Some(CpuThrottling {
        nr_periods: periods?,
        nr_throttled: throttled?,
        throttled_ns: usec?.saturating_mul(1000),
    })
}

/// A file of the cgroup at `dir`; `None` when the kernel does not offer it there (no such
/// controller, PSI off: `ENOENT`, or `EOPNOTSUPP` after `0` was written to `cgroup.pressure`).
fn read_optional(dir: &Path, name: &str) -> io::Result<Option<String>> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Ok(Some(text)),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::EOPNOTSUPP) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The three `*.pressure` files of the cgroup at `dir`; `None` when any is not offered.
pub fn read_pressure(dir: &Path) -> io::Result<Option<CgroupPressure>> {
    let mut totals = [None; 3];
    for (slot, name) in totals
        .iter_mut()
        .zip(["cpu.pressure", "memory.pressure", "io.pressure"])
    {
        *slot = read_optional(dir, name)?
            .as_deref()
            .and_then(parse_pressure);
    }
    let [Some(cpu), Some(memory), Some(io)] = totals else {
        return Ok(None);
    };
    Ok(Some(CgroupPressure { cpu, memory, io }))
}

/// `memory.events` of the cgroup at `dir`.
pub fn read_memory_events(dir: &Path) -> io::Result<Option<MemoryEvents>> {
    Ok(read_optional(dir, "memory.events")?
        .as_deref()
        .and_then(parse_memory_events))
}

/// The throttling counters in `cpu.stat` of the cgroup at `dir`.
pub fn read_cpu_throttling(dir: &Path) -> io::Result<Option<CpuThrottling>> {
    Ok(read_optional(dir, "cpu.stat")?
        .as_deref()
        .and_then(parse_cpu_throttling))
}

/// Where the snapshot's groups of counters came from: `usage` (the snapshot's source) for what it
/// carries itself, cgroupfs for the groups `added` says [`complete`] filled (pressure, memory
/// events, throttling), `None` for a group no cgroup has.
pub fn sources_of(snapshot: &Snapshot, usage: ReadingSource, added: [bool; 3]) -> FieldSources {
    let has = |f: fn(&stressmix_api::kmod::Cgroup) -> bool, added: bool| {
        snapshot.cgroups.iter().any(f).then_some(if added {
            ReadingSource::Cgroupfs
        } else {
            usage
        })
    };
    FieldSources {
        usage,
        pressure: has(|c| c.pressure.is_some(), added[0]),
        memory_events: has(|c| c.memory_events.is_some(), added[1]),
        cpu_throttling: has(|c| c.cpu_throttling.is_some(), added[2]),
    }
}

/// Fills, from cgroupfs below `cgroup_root`, each group of counters the snapshot's source did not
/// give: throttling always (no module reaches it), pressure and memory events when the document
/// has none (a module of schema 1). A cgroup removed meanwhile keeps `None`.
pub fn complete(snapshot: &mut Snapshot, cgroup_root: &Path, usage: ReadingSource) -> FieldSources {
    let lacks = |f: fn(&stressmix_api::kmod::Cgroup) -> bool| !snapshot.cgroups.iter().any(f);
    let added = [
        lacks(|c| c.pressure.is_some()),
        lacks(|c| c.memory_events.is_some()),
        lacks(|c| c.cpu_throttling.is_some()),
    ];
    for cgroup in &mut snapshot.cgroups {
        let path = cgroup.path.to_string_lossy();
        let dir = cgroup_root.join(path.trim_start_matches('/'));
        // Errors other than "not offered" (the cgroup went away mid-read) leave the group empty.
        if added[0] {
            cgroup.pressure = read_pressure(&dir).ok().flatten();
        }
        if added[1] {
            cgroup.memory_events = read_memory_events(&dir).ok().flatten();
        }
        if added[2] {
            cgroup.cpu_throttling = read_cpu_throttling(&dir).ok().flatten();
        }
    }
    sources_of(snapshot, usage, added)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU_STAT: &str = "usage_usec 2069000\nuser_usec 2000000\nsystem_usec 69000\n\
        core_sched.force_idle_usec 0\nnr_periods 207\nnr_throttled 198\nthrottled_usec 18123456\n\
        nr_bursts 0\nburst_usec 0\n";

    #[test]
    fn pressure_totals_are_read_in_ns() {
        let text = "some avg10=1.00 avg60=0.50 avg300=0.10 total=123456\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=789\n";
        assert_eq!(
            parse_pressure(text),
            Some(PressureTotals {
                some_ns: 123_456_000,
                full_ns: 789_000
            })
        );
        // cgroup cpu.pressure before 5.13 has no full line.
        let some_only = "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n";
        assert_eq!(parse_pressure(some_only).map(|p| p.full_ns), Some(0));
        assert_eq!(parse_pressure(""), None);
        assert_eq!(parse_pressure("some avg10=0.00 total=x\n"), None);
    }

    #[test]
    fn memory_events_and_throttling_are_read_by_key() {
        let events = "low 0\nhigh 3\nmax 41\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(
            parse_memory_events(events),
            Some(MemoryEvents {
                low: 0,
                high: 3,
                max: 41,
                oom: 2,
                oom_kill: 2
            })
        );
        assert_eq!(parse_memory_events("something_else 1\n"), None);
        assert_eq!(
            parse_cpu_throttling(CPU_STAT),
            Some(CpuThrottling {
                nr_periods: 207,
                nr_throttled: 198,
                throttled_ns: 18_123_456_000
            })
        );
        // No cpu controller: cpu.stat has the usage lines only.
        assert_eq!(
            parse_cpu_throttling("usage_usec 1\nuser_usec 1\nsystem_usec 0\n"),
            None
        );
    }

    #[test]
    fn files_not_offered_read_as_none_and_present_ones_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_pressure(dir.path()).expect("no error"), None);
        assert_eq!(read_memory_events(dir.path()).expect("no error"), None);
        assert_eq!(read_cpu_throttling(dir.path()).expect("no error"), None);
        let line = "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n";
        for name in ["cpu.pressure", "memory.pressure", "io.pressure"] {
            std::fs::write(dir.path().join(name), line).expect("write");
        }
        std::fs::write(dir.path().join("cpu.stat"), CPU_STAT).expect("write");
        let pressure = read_pressure(dir.path()).expect("read").expect("offered");
        assert_eq!(pressure.io.full_ns, 3000);
        assert_eq!(
            read_cpu_throttling(dir.path())
                .expect("read")
                .map(|t| t.nr_throttled),
            Some(198)
        );
        // Not a file: a real error, not "not offered".
        std::fs::create_dir(dir.path().join("memory.events")).expect("mkdir");
        assert!(read_memory_events(dir.path()).is_err());
    }
}
