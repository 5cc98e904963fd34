//! Rates from two successive snapshots of cumulative counters.
//!
//! - The interval is measured on the boot clock of the snapshots (monotonic), never the wall clock.
//! - A cgroup is matched to its previous reading by path *and* id: a path whose id changed is a new
//!   cgroup (deleted and re-created), so it has no rate yet.
//! - A cgroup seen for the first time has no rate: it is reported from its second interval on.
//! - A counter that went down (a reset: the per-process I/O sums drop when a process exits) counts
//!   as zero for that interval, so no rate is ever negative; resets are counted.
//! - Cgroups that vanished are forgotten: the state only keeps the latest snapshot's cgroups.
//! - Pressure (% of the interval stalled) and throttling need the counters at both ends of the
//!   interval; a cgroup without them (PSI off, no `cpu` controller) has `None` there. Throttled
//!   periods are a share of the periods that elapsed: `None` when none did (no quota, or idle).

use std::collections::HashMap;

use stressmix_api::kmod::{Cgroup, CgroupPressure, CpuThrottling, Snapshot};
use stressmix_api::readings::{ContainerReading, NodeReading};

/// The counters of one cgroup that rates are computed from.
#[derive(Debug, Clone, Copy)]
struct Counters {
    id: u64,
    cpu_ns: u64,
    read_bytes: u64,
    write_bytes: u64,
    io_ops: u64,
    pressure: Option<CgroupPressure>,
    throttling: Option<CpuThrottling>,
}

impl Counters {
    fn of(cgroup: &Cgroup) -> Self {
        Counters {
            id: cgroup.id,
            cpu_ns: cgroup.cpu.usage_ns,
            read_bytes: cgroup.io.read_bytes,
            write_bytes: cgroup.io.write_bytes,
            io_ops: cgroup
                .io
                .read_syscalls
                .saturating_add(cgroup.io.write_syscalls),
            pressure: cgroup.pressure,
            throttling: cgroup.cpu_throttling,
        }
    }
}

/// The contention fields of one reading.
#[derive(Debug, Default)]
struct Contention {
    /// cpu some/full, memory some/full, io some/full, percent of the interval.
    pressure: [Option<f64>; 6],
    throttled_periods_percent: Option<f64>,
    throttled_seconds_per_sec: Option<f64>,
}

#[derive(Debug)]
struct Previous {
    boot_ns: u64,
    node_busy_ns: u64,
    node_total_ns: u64,
    cgroups: HashMap<String, Counters>,
}

/// What one interval yields: the node and one reading per cgroup (attribution fields empty).
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalRates {
    pub timestamp_ms: u64,
    pub interval_secs: f64,
    pub node: NodeReading,
    pub cgroups: Vec<ContainerReading>,
}

#[derive(Debug, Default)]
pub struct RateComputer {
    previous: Option<Previous>,
    resets: u64,
}

impl RateComputer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counter decreases seen so far.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Feed the next snapshot. `None` for the first one, and when the boot clock did not advance
    /// (the same snapshot twice); the snapshot then becomes the new base.
    pub fn update(&mut self, snapshot: &Snapshot) -> Option<IntervalRates> {
        let now = Previous {
            boot_ns: snapshot.timestamp.boot_ns,
            node_busy_ns: snapshot.system.cpu.time_ns.busy(),
            node_total_ns: snapshot.system.cpu.time_ns.total(),
            cgroups: snapshot
                .cgroups
                .iter()
                .map(|c| (c.path.to_string_lossy().into_owned(), Counters::of(c)))
                .collect(),
        };
        let previous = self.previous.replace(now);
        let previous = previous?;
        let dt_ns = snapshot.timestamp.boot_ns.checked_sub(previous.boot_ns)?;
        if dt_ns == 0 {
            return None;
        }
        let dt = dt_ns as f64 / 1e9;
        let cpus = snapshot.system.cpu.online.max(1);
        let memory = &snapshot.system.memory;

        let busy = self.delta(previous.node_busy_ns, snapshot.system.cpu.time_ns.busy());
        let total = self.delta(previous.node_total_ns, snapshot.system.cpu.time_ns.total());
        let node = NodeReading {
            memory_total_bytes: memory.total_bytes,
            memory_free_bytes: memory.free_bytes,
            memory_available_bytes: memory.available_bytes,
            memory_used_bytes: memory.used_bytes,
            cpu_percent: if total == 0 {
                0.0
            } else {
                (busy as f64 / total as f64 * 100.0).clamp(0.0, 100.0)
            },
            cpus,
        };

        let mut cgroups = Vec::with_capacity(snapshot.cgroups.len());
        for cgroup in &snapshot.cgroups {
            let path = cgroup.path.to_string_lossy();
            let Some(before) = previous.cgroups.get(path.as_ref()) else {
                continue;
            };
            if before.id != cgroup.id {
                // Same path, new cgroup: its counters started again from zero.
                self.resets += 1;
                continue;
            }
            let after = Counters::of(cgroup);
            let per_sec = |d: u64| d as f64 / dt;
            let cpu_percent = self.delta(before.cpu_ns, after.cpu_ns) as f64 / dt_ns as f64 * 100.0;
            let memory_bytes = cgroup.memory.map_or(0, |m| m.current_bytes);
            let contention = self.contention(before, &after, dt_ns);
            let [
                cpu_some,
                cpu_full,
                memory_some,
                memory_full,
                io_some,
                io_full,
            ] = contention.pressure;
            cgroups.push(ContainerReading {
                cgroup_id: Some(cgroup.id),
                cgroup_path: path.into_owned(),
                cpu_percent,
                cpu_percent_node: (cpu_percent / f64::from(cpus)).min(100.0),
                memory_bytes,
                memory_percent: if memory.total_bytes == 0 {
                    0.0
                } else {
                    memory_bytes as f64 / memory.total_bytes as f64 * 100.0
                },
                disk_read_bytes_per_sec: per_sec(self.delta(before.read_bytes, after.read_bytes)),
                disk_write_bytes_per_sec: per_sec(
                    self.delta(before.write_bytes, after.write_bytes),
                ),
                io_ops_per_sec: per_sec(self.delta(before.io_ops, after.io_ops)),
                cpu_pressure_some_percent: cpu_some,
                cpu_pressure_full_percent: cpu_full,
                memory_pressure_some_percent: memory_some,
                memory_pressure_full_percent: memory_full,
                io_pressure_some_percent: io_some,
                io_pressure_full_percent: io_full,
                cpu_throttled_periods_percent: contention.throttled_periods_percent,
                cpu_throttled_seconds_per_sec: contention.throttled_seconds_per_sec,
                // Attribution (pod, Workload, kind) is the attribution module's job.
                ..ContainerReading::default()
            });
        }
        Some(IntervalRates {
            timestamp_ms: snapshot.timestamp.wall_ns / 1_000_000,
            interval_secs: dt,
            node,
            cgroups,
        })
    }

    fn contention(&mut self, before: &Counters, after: &Counters, dt_ns: u64) -> Contention {
        let mut out = Contention::default();
        let share = |part: u64, whole: u64| (part as f64 / whole as f64 * 100.0).clamp(0.0, 100.0);
        if let (Some(b), Some(a)) = (before.pressure, after.pressure) {
            let pairs = [
                (b.cpu.some_ns, a.cpu.some_ns),
                (b.cpu.full_ns, a.cpu.full_ns),
                (b.memory.some_ns, a.memory.some_ns),
                (b.memory.full_ns, a.memory.full_ns),
                (b.io.some_ns, a.io.some_ns),
                (b.io.full_ns, a.io.full_ns),
            ];
            for (slot, (b, a)) in out.pressure.iter_mut().zip(pairs) {
                // The module's totals lag by up to the kernel's 2 s averaging period, so one
                // interval may catch up more than its length: capped at all of it.
                *slot = Some(share(self.delta(b, a), dt_ns));
            }
        }
        if let (Some(b), Some(a)) = (before.throttling, after.throttling) {
            let periods = self.delta(b.nr_periods, a.nr_periods);
            let throttled = self.delta(b.nr_throttled, a.nr_throttled);
            out.throttled_periods_percent = (periods > 0).then(|| share(throttled, periods));
            out.throttled_seconds_per_sec =
                Some(self.delta(b.throttled_ns, a.throttled_ns) as f64 / dt_ns as f64);
        }
        out
    }

    /// The growth of a counter; a decrease is a reset and counts as no growth.
    fn delta(&mut self, before: u64, after: u64) -> u64 {
        match after.checked_sub(before) {
            Some(d) => d,
            None => {
                self.resets += 1;
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stressmix_api::kmod::KString;

    const FIXTURE: &str = include_str!("../../api/tests/fixtures/kmod/handwritten-v1.json");

    fn base() -> Snapshot {
        serde_json::from_str(FIXTURE).expect("fixture parses")
    }

    /// The snapshot `secs` later, with `f` applied to every cgroup and the node's CPU busy for
    /// `busy_ns` of `secs * cpus` seconds.
    fn later(s: &Snapshot, secs: u64, busy_ns: u64, f: impl Fn(&mut Cgroup)) -> Snapshot {
        let mut next = s.clone();
        next.timestamp.boot_ns += secs * 1_000_000_000;
        next.timestamp.wall_ns += secs * 1_000_000_000;
        let all = secs * 1_000_000_000 * u64::from(s.system.cpu.online);
        next.system.cpu.time_ns.user += busy_ns;
        next.system.cpu.time_ns.idle += all - busy_ns;
        next.cgroups.iter_mut().for_each(f);
        next
    }

    fn find<'a>(rates: &'a IntervalRates, path: &str) -> &'a ContainerReading {
        rates
            .cgroups
            .iter()
            .find(|c| c.cgroup_path == path)
            .unwrap_or_else(|| panic!("{path} missing"))
    }

    #[test]
    fn first_snapshot_gives_nothing() {
        let mut r = RateComputer::new();
        assert!(r.update(&base()).is_none());
    }

    #[test]
    fn cpu_memory_and_io_rates() {
        let s0 = base();
        let target = s0
            .cgroups
            .last()
            .expect("a cgroup")
            .path
            .to_string_lossy()
            .into_owned();
        let mut r = RateComputer::new();
        assert!(r.update(&s0).is_none());
        // 2 s, one core fully busy in the target cgroup (2e9 ns), 4 MiB read, 1 MiB written, 300 syscalls.
        let s1 = later(&s0, 2, 2_000_000_000, |c| {
            if c.path.to_string_lossy() == target {
                c.cpu.usage_ns += 2_000_000_000;
                c.io.read_bytes += 4 << 20;
                c.io.write_bytes += 1 << 20;
                c.io.read_syscalls += 100;
                c.io.write_syscalls += 200;
            }
        });
        let rates = r.update(&s1).expect("rates");
        assert!((rates.interval_secs - 2.0).abs() < 1e-9);
        assert_eq!(rates.cgroups.len(), s1.cgroups.len());
        let c = find(&rates, &target);
        assert!((c.cpu_percent - 100.0).abs() < 1e-9, "{}", c.cpu_percent);
        assert!(
            (c.cpu_percent_node - 50.0).abs() < 1e-9,
            "2 cpus: {}",
            c.cpu_percent_node
        );
        assert!((c.disk_read_bytes_per_sec - 2.0 * 1048576.0).abs() < 1e-6);
        assert!((c.disk_write_bytes_per_sec - 524288.0).abs() < 1e-6);
        assert!((c.io_ops_per_sec - 150.0).abs() < 1e-9);
        let mem = s1
            .cgroups
            .last()
            .and_then(|c| c.memory)
            .map_or(0, |m| m.current_bytes);
        assert_eq!(c.memory_bytes, mem);
        let expected = mem as f64 / s1.system.memory.total_bytes as f64 * 100.0;
        assert!((c.memory_percent - expected).abs() < 1e-9);
        // Node: 2e9 busy of 4e9 → 50 %.
        assert!(
            (rates.node.cpu_percent - 50.0).abs() < 1e-9,
            "{}",
            rates.node.cpu_percent
        );
        assert_eq!(rates.node.cpus, 2);
        assert_eq!(rates.timestamp_ms, s1.timestamp.wall_ns / 1_000_000);
        // Every other cgroup was idle.
        for other in rates.cgroups.iter().filter(|c| c.cgroup_path != target) {
            assert_eq!(other.cpu_percent, 0.0);
        }
    }

    #[test]
    fn counter_decrease_counts_as_zero_not_negative() {
        let s0 = later(&base(), 0, 0, |c| c.io.read_bytes = 1 << 30);
        let mut r = RateComputer::new();
        assert!(r.update(&s0).is_none());
        let s1 = later(&s0, 1, 0, |c| c.io.read_bytes = 10);
        let rates = r.update(&s1).expect("rates");
        for c in &rates.cgroups {
            assert_eq!(c.disk_read_bytes_per_sec, 0.0, "{}", c.cgroup_path);
        }
        assert_eq!(r.resets(), s1.cgroups.len() as u64);
        let s2 = later(&s1, 1, 0, |c| c.io.read_bytes += 1000);
        let rates = r.update(&s2).expect("rates");
        assert!(
            rates
                .cgroups
                .iter()
                .all(|c| (c.disk_read_bytes_per_sec - 1000.0).abs() < 1e-9)
        );
    }

    #[test]
    fn recreated_and_new_cgroups_wait_one_interval_and_vanished_ones_are_forgotten() {
        let s0 = base();
        let first = s0.cgroups[0].path.to_string_lossy().into_owned();
        let second = s0.cgroups[1].path.to_string_lossy().into_owned();
        let mut r = RateComputer::new();
        assert!(r.update(&s0).is_none());
        let mut s1 = later(&s0, 1, 0, |c| c.cpu.usage_ns += 1);
        s1.cgroups[0].id += 1000; // re-created under the same path
        s1.cgroups[0].cpu.usage_ns = 0;
        s1.cgroups.remove(1); // vanished
        let mut newcomer = s1.cgroups[0].clone();
        newcomer.id = 99_999;
        newcomer.path = KString::from("/brand-new");
        s1.cgroups.push(newcomer);
        let rates = r.update(&s1).expect("rates");
        let paths: Vec<&str> = rates
            .cgroups
            .iter()
            .map(|c| c.cgroup_path.as_str())
            .collect();
        assert!(
            !paths.contains(&first.as_str()),
            "re-created cgroup has no rate yet"
        );
        assert!(!paths.contains(&second.as_str()), "vanished cgroup is gone");
        assert!(!paths.contains(&"/brand-new"), "new cgroup has no rate yet");
        assert_eq!(rates.cgroups.len(), s0.cgroups.len() - 2);
        let s2 = later(&s1, 1, 0, |c| c.cpu.usage_ns += 500_000_000);
        let rates = r.update(&s2).expect("rates");
        assert_eq!(rates.cgroups.len(), s2.cgroups.len());
        assert!(
            rates
                .cgroups
                .iter()
                .all(|c| (c.cpu_percent - 50.0).abs() < 1e-9)
        );
    }

    #[test]
    fn same_or_older_snapshot_gives_no_rates_and_all_rates_are_finite() {
        let s0 = base();
        let mut r = RateComputer::new();
        assert!(r.update(&s0).is_none());
        assert!(r.update(&s0).is_none(), "zero interval");
        let mut tiny = later(&s0, 0, 0, |c| c.cpu.usage_ns = u64::MAX);
        tiny.timestamp.boot_ns += 1;
        let rates = r.update(&tiny).expect("1 ns interval");
        for c in &rates.cgroups {
            assert!(c.cpu_percent.is_finite() && c.cpu_percent >= 0.0);
            assert!(c.cpu_percent_node <= 100.0);
        }
    }

    #[test]
    fn zero_memory_total_does_not_divide_by_zero() {
        let mut s0 = base();
        s0.system.memory.total_bytes = 0;
        let mut r = RateComputer::new();
        assert!(r.update(&s0).is_none());
        let rates = r.update(&later(&s0, 1, 0, |_| {})).expect("rates");
        assert!(rates.cgroups.iter().all(|c| c.memory_percent == 0.0));
    }

    fn with_contention(s: &Snapshot) -> Snapshot {
        use stressmix_api::kmod::PressureTotals;
        let totals = |v: u64| PressureTotals {
            some_ns: v,
            full_ns: v / 2,
        };
        later(s, 0, 0, |c| {
            c.pressure = Some(CgroupPressure {
                cpu: totals(1_000_000_000),
                memory: totals(0),
                io: totals(0),
            });
            c.cpu_throttling = Some(CpuThrottling {
                nr_periods: 100,
                nr_throttled: 10,
                throttled_ns: 5_000_000_000,
            });
        })
    }

    #[test]
    fn pressure_and_throttling_rates() {
        let s0 = with_contention(&base());
        let mut r = RateComputer::new();
        assert!(r.update(&s0).is_none());
        // 10 s: cpu some stalled 2.5 s (full 1.25 s), memory some 1 s; 100 periods of which 90
        // throttled, 7 s throttled in all.
        let s1 = later(&s0, 10, 0, |c| {
            if let Some(p) = &mut c.pressure {
                p.cpu.some_ns += 2_500_000_000;
                p.cpu.full_ns += 1_250_000_000;
                p.memory.some_ns += 1_000_000_000;
            }
            if let Some(t) = &mut c.cpu_throttling {
                t.nr_periods += 100;
                t.nr_throttled += 90;
                t.throttled_ns += 7_000_000_000;
            }
        });
        let rates = r.update(&s1).expect("rates");
        assert!(!rates.cgroups.is_empty());
        for c in &rates.cgroups {
            assert_eq!(c.cpu_pressure_some_percent, Some(25.0));
            assert_eq!(c.cpu_pressure_full_percent, Some(12.5));
            assert_eq!(c.memory_pressure_some_percent, Some(10.0));
            assert_eq!(c.memory_pressure_full_percent, Some(0.0));
            assert_eq!(c.io_pressure_some_percent, Some(0.0));
            assert_eq!(c.cpu_throttled_periods_percent, Some(90.0));
            assert_eq!(c.cpu_throttled_seconds_per_sec, Some(0.7));
        }
        // No period elapsed (no quota, or idle): no share of periods, still 0 s/s throttled; a
        // pressure total that went down (a reset) is no stall, never a negative one.
        let s2 = later(&s1, 10, 0, |c| {
            if let Some(p) = &mut c.pressure {
                p.cpu.some_ns = 0;
            }
        });
        let resets = r.resets();
        let rates = r.update(&s2).expect("rates");
        for c in &rates.cgroups {
            assert_eq!(c.cpu_throttled_periods_percent, None);
            assert_eq!(c.cpu_throttled_seconds_per_sec, Some(0.0));
            assert_eq!(c.cpu_pressure_some_percent, Some(0.0));
        }
        assert_eq!(r.resets(), resets + rates.cgroups.len() as u64);
        // A lagging total that catches up more than the interval is capped at all of it.
        let s3 = later(&s2, 1, 0, |c| {
            if let Some(p) = &mut c.pressure {
                p.memory.some_ns += 3_000_000_000;
            }
        });
        let rates = r.update(&s3).expect("rates");
        assert!(
            rates
                .cgroups
                .iter()
                .all(|c| c.memory_pressure_some_percent == Some(100.0))
        );
    }

    #[test]
    fn contention_needs_counters_at_both_ends() {
        // Schema 1 document, no cpu.stat throttling: nothing to say.
        let s0 = base();
        let mut r = RateComputer::new();
        assert!(r.update(&s0).is_none());
        let s1 = with_contention(&later(&s0, 1, 0, |_| {}));
        let rates = r.update(&s1).expect("rates");
        for c in &rates.cgroups {
            assert_eq!(c.cpu_pressure_some_percent, None);
            assert_eq!(c.cpu_throttled_seconds_per_sec, None);
        }
        let rates = r.update(&later(&s1, 1, 0, |_| {})).expect("rates");
        assert!(
            rates
                .cgroups
                .iter()
                .all(|c| c.cpu_pressure_some_percent == Some(0.0))
        );
    }
}
