//! The schema 2 checks (issue 14): pressure stall totals, `memory.events` and CPU throttling, each
//! against the kernel's own files in the same guest.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use stressmix_agent::source::kernel_files;
use stressmix_api::kmod::{MemoryEvents, PressureTotals};

use crate::cg;
use crate::doc;
use crate::suite::{PROC, find, wait_for, within};

/// `cpu.max` of the throttled cgroup: 10 ms every 100 ms, 10 % of one CPU.
const QUOTA_US: u64 = 10_000;
const PERIOD_US: u64 = 100_000;
/// How long the throttled hog runs before its counters are compared.
const HOG_RUN: Duration = Duration::from_secs(4);
/// `memory.max` of the OOM cgroup, and what its process touches (swap is off in the guest).
const OOM_LIMIT: u64 = 8 << 20;
const OOM_TOUCH: u64 = 64 << 20;

/// Both are container cgroups (64-hex names), so the containers-only document lists them too.
pub struct Paths {
    pub throttled: Vec<u8>,
    pub oom: Vec<u8>,
}

pub fn paths(container_id: impl Fn(u32) -> String) -> Paths {
    let pod = "/kubepods/burstable/pod3d4e5f60-7182-93a4-b5c6-d7e8f90a1b2c";
    Paths {
        throttled: format!("{pod}/{}", container_id(5)).into_bytes(),
        oom: format!("{pod}/{}", container_id(6)).into_bytes(),
    }
}

/// A CPU hog in a cgroup limited to 10 % by `cpu.max`; returns it and when it started.
pub fn start_throttled(exe: &Path, path: &[u8]) -> Result<(Child, Instant)> {
    let dir = cg::make_tree(path)?;
    cg::write(&dir, "cpu.max", &format!("{QUOTA_US} {PERIOD_US}"))?;
    let start = Instant::now();
    let child = cg::spawn_in(&dir, Command::new(exe).arg("spin"))?;
    Ok((child, start))
}

fn memory_events_file(dir: &Path) -> Result<MemoryEvents> {
    let k = |key| cg::keyed_u64(dir, "memory.events", key);
    Ok(MemoryEvents {
        low: k("low")?,
        high: k("high")?,
        max: k("max")?,
        oom: k("oom")?,
        oom_kill: k("oom_kill")?,
    })
}

/// A process that touches 64 MiB under an 8 MiB `memory.max` is OOM-killed; the module's
/// `memory_events` of its cgroup, read while the cgroup still exists, equal `memory.events`.
pub fn oom_kill(exe: &Path, path: &[u8]) -> Result<()> {
    let dir = cg::make_tree(path)?;
    cg::write(&dir, "memory.max", &OOM_LIMIT.to_string())?;
    if dir.join("memory.swap.max").exists() {
        cg::write(&dir, "memory.swap.max", "0")?;
    }
    let mut child = cg::spawn_in(
        &dir,
        Command::new(exe).args(["hold-memory", &OOM_TOUCH.to_string()]),
    )?;
    let mut status = None;
    let waited = wait_for(
        "the memory hog to be OOM-killed",
        Duration::from_secs(120),
        || {
            status = child.try_wait()?;
            Ok(status.is_some())
        },
    );
    if waited.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    waited?;
    let status = status.context("no exit status")?;
    ensure!(
        status.signal() == Some(libc::SIGKILL),
        "the memory hog was not killed by the OOM killer: {status}"
    );
    let before = memory_events_file(&dir)?;
    let (_, s) = doc::read(PROC)?;
    let after = memory_events_file(&dir)?;
    ensure!(
        before == after,
        "memory.events moved: {before:?} then {after:?}"
    );
    let agent = kernel_files::read_memory_events(&dir)?.context("agent: no memory.events")?;
    ensure!(
        agent == before,
        "agent's reader {agent:?} vs memory.events {before:?}"
    );
    let c = find(&s, path)?;
    let got = c
        .memory_events
        .context("no memory_events on the OOM cgroup")?;
    println!("  module {got:?}; memory.events {before:?}");
    ensure!(got.oom_kill >= 1, "oom_kill {}", got.oom_kill);
    ensure!(
        got.oom_kill == before.oom_kill && got.oom == before.oom && got.max == before.max,
        "module {got:?} vs memory.events {before:?}"
    );
    ensure!(got == before, "module {got:?} vs memory.events {before:?}");
    ensure!(
        c.cpu_throttling.is_none(),
        "the module wrote cpu_throttling: {:?}",
        c.cpu_throttling
    );
    Ok(())
}

/// Every cgroup: `memory_events` present exactly when `memory` is, and equal to `memory.events`.
pub fn memory_events() -> Result<()> {
    for attempt in 0..5 {
        let (_, s) = doc::read(PROC)?;
        let mut compared = 0;
        let mut unstable = false;
        for c in &s.cgroups {
            ensure!(
                c.memory.is_some() == c.memory_events.is_some(),
                "{}: memory {:?} but memory_events {:?}",
                c.path,
                c.memory,
                c.memory_events
            );
            let Some(got) = c.memory_events else {
                continue;
            };
            let want = memory_events_file(&cg::dir(&c.path.to_bytes()?))?;
            if got != want {
                ensure!(attempt < 4, "{}: {got:?} vs memory.events {want:?}", c.path);
                unstable = true;
                break;
            }
            compared += 1;
        }
        if !unstable {
            println!("  {compared} cgroups equal memory.events");
            return Ok(());
        }
    }
    bail!("memory.events never stable")
}

type FileTotals = [(u64, u64); 3];

/// `total=` (µs) of cpu, memory and io `.pressure` of every cgroup that has them.
fn pressure_files() -> Result<HashMap<Vec<u8>, FileTotals>> {
    let mut dirs = vec![];
    cg::walk(Path::new(cg::ROOT), b"", &mut dirs)?;
    let mut out = HashMap::new();
    for p in dirs {
        let dir = cg::dir(&p);
        if !dir.join("cpu.pressure").exists() {
            continue;
        }
        let totals = [
            cg::pressure_totals_us(&dir, "cpu.pressure")?,
            cg::pressure_totals_us(&dir, "memory.pressure")?,
            cg::pressure_totals_us(&dir, "io.pressure")?,
        ];
        out.insert(p, totals);
    }
    Ok(out)
}

/// The module's value must lie between the file read before it and the file read after it
/// (reading a file brings the kernel's totals up to date), within 1 % or 5 µs.
fn bracketed(got_ns: u64, before_us: u64, after_us: u64) -> bool {
    let lo = before_us * 1000;
    let hi = after_us * 1000 + 999;
    let slack = |v: u64| (v / 100).max(5_000);
    got_ns + slack(lo) >= lo && got_ns <= hi + slack(hi)
}

/// Pressure stall totals of every cgroup against its `*.pressure` files read before and after.
pub fn pressure(t: &Paths) -> Result<()> {
    ensure!(
        Path::new("/proc/pressure/cpu").exists(),
        "PSI is off in the guest (no /proc/pressure/cpu): boot with psi=1"
    );
    let before = pressure_files()?;
    let (raw, s) = doc::read(PROC)?;
    let after = pressure_files()?;
    // The fixture of this kernel: the throttled and OOM cgroups carry pressure and OOM kills.
    std::fs::write("/tmp/sample-all.json", &raw)?;
    let (mut compared, mut inside) = (0, 0);
    for c in &s.cgroups {
        let p = c.path.to_bytes()?;
        let (Some(b), Some(a)) = (before.get(&p), after.get(&p)) else {
            ensure!(
                c.pressure.is_none(),
                "{}: pressure but no .pressure files",
                c.path
            );
            continue;
        };
        let got = c
            .pressure
            .with_context(|| format!("{}: pressure null", c.path))?;
        let resources: [(&str, PressureTotals); 3] =
            [("cpu", got.cpu), ("memory", got.memory), ("io", got.io)];
        for (i, (name, m)) in resources.iter().enumerate() {
            for (kind, g, lo, hi) in [
                ("some", m.some_ns, b[i].0, a[i].0),
                ("full", m.full_ns, b[i].1, a[i].1),
            ] {
                ensure!(
                    bracketed(g, lo, hi),
                    "{}: {name} {kind} {g} ns outside {name}.pressure total= [{lo}, {hi}] us",
                    c.path
                );
                compared += 1;
                if (lo * 1000..=hi * 1000 + 999).contains(&g) {
                    inside += 1;
                }
            }
        }
    }
    println!(
        "  {compared} totals of {} cgroups within their files (1 % / 5 us), {inside} strictly between",
        before.len()
    );
    let show = |path: &[u8], i: usize, name: &str| -> Result<PressureTotals> {
        let c = find(&s, path)?;
        let got = c.pressure.context("no pressure")?;
        let m = [got.cpu, got.memory, got.io][i];
        let (b, a) = (before[path][i], after[path][i]);
        println!(
            "  {}: {name} some {} ns [file {} .. {} us], full {} ns [file {} .. {} us]",
            String::from_utf8_lossy(path),
            m.some_ns,
            b.0,
            a.0,
            m.full_ns,
            b.1,
            a.1
        );
        Ok(m)
    };
    let cpu = show(&t.throttled, 0, "cpu")?;
    ensure!(
        cpu.some_ns > 0 && cpu.full_ns > 0,
        "throttled hog shows no cpu stall: {cpu:?}"
    );
    let mem = show(&t.oom, 1, "memory")?;
    ensure!(mem.some_ns > 0, "OOM cgroup shows no memory stall: {mem:?}");
    show(&t.oom, 2, "io")?;
    Ok(())
}

/// The throttled hog, stopped: throttling read from `cpu.stat` by the agent's reader
/// (`stressmix_agent::source::kernel_files`) equals the file within 1 %, and the module's CPU time
/// of the hog is about 10 % of its wall time.
pub fn throttling(hog: Option<&(Child, Instant)>, path: &[u8]) -> Result<()> {
    let (child, start) = hog.context("the throttled hog did not start")?;
    if let Some(rest) = HOG_RUN.checked_sub(start.elapsed()) {
        std::thread::sleep(rest);
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    let wall = start.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let dir: PathBuf = cg::dir(path);
    let read = kernel_files::read_cpu_throttling(&dir)
        .with_context(|| format!("read {}/cpu.stat", dir.display()))?
        .context("cpu.stat has no throttling counters")?;
    let (_, s) = doc::read(PROC)?;
    let k = |key| cg::keyed_u64(&dir, "cpu.stat", key);
    let (periods, throttled, usec) = (k("nr_periods")?, k("nr_throttled")?, k("throttled_usec")?);
    println!(
        "  read {read:?}; cpu.stat nr_periods {periods} nr_throttled {throttled} throttled_usec {usec}"
    );
    for (name, got, want) in [
        ("nr_periods", read.nr_periods, periods),
        ("nr_throttled", read.nr_throttled, throttled),
        ("throttled_ns", read.throttled_ns, usec * 1000),
    ] {
        ensure!(
            within(got, want, 1.0),
            "{name}: read {got}, cpu.stat {want}"
        );
    }
    ensure!(
        throttled >= 1 && throttled * 2 >= periods,
        "a hog at 10 % is throttled in most periods: {throttled} of {periods}"
    );
    let c = find(&s, path)?;
    ensure!(
        c.cpu_throttling.is_none(),
        "the module wrote cpu_throttling"
    );
    let usage = c.cpu.usage_ns;
    let file_usage = cg::cpu_usage_ns(&dir)?;
    ensure!(
        within(usage, file_usage, 1.0),
        "module usage {usage} ns vs cpu.stat {file_usage} ns"
    );
    let share = usage as f64 / wall.as_nanos() as f64;
    let per_period = usage as f64 / periods.max(1) as f64 / (QUOTA_US * 1000) as f64;
    println!(
        "  module usage {usage} ns over {} ms wall: {:.1} % of a CPU (quota 10 %); {:.2} quotas per period",
        wall.as_millis(),
        share * 100.0,
        per_period
    );
    ensure!(
        (0.05..=0.12).contains(&share),
        "usage {:.1} % of wall time, quota 10 %",
        share * 100.0
    );
    ensure!(
        (0.5..=1.2).contains(&per_period),
        "usage per period {per_period:.2} quotas"
    );
    Ok(())
}
