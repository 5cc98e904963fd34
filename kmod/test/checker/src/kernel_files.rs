//! Stand-in for `stressmix_agent::source::kernel_files` until that lands on main: the throttling
//! counters of `cpu.stat`, with the agent's signature, so the check switches by changing one `use`.

use std::io;
use std::path::Path;

use stressmix_api::kmod::CpuThrottling;

/// `nr_periods`, `nr_throttled` and `throttled_usec` (as ns) of `dir/cpu.stat`; `None` when the
/// file has no `nr_periods` (no `cpu` controller on the cgroup).
pub fn read_cpu_throttling(dir: &Path) -> Result<Option<CpuThrottling>, io::Error> {
    let text = std::fs::read_to_string(dir.join("cpu.stat"))?;
    let (mut periods, mut throttled, mut usec) = (None, None, None);
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let v: u64 = v.parse().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("cpu.stat {k}: {e}"))
        })?;
        match k {
            "nr_periods" => periods = Some(v),
            "nr_throttled" => throttled = Some(v),
            "throttled_usec" => usec = Some(v),
            _ => {}
        }
    }
    Ok(periods.map(|nr_periods| CpuThrottling {
        nr_periods,
        nr_throttled: throttled.unwrap_or(0),
        throttled_ns: usec.unwrap_or(0).saturating_mul(1000),
    }))
}
