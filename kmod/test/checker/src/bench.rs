//! Cost of one read of the module's document vs a userspace reader that gathers the same
//! fields from cgroupfs and procfs files (schema 2: the `*.pressure` files and `memory.events` too),
//! at several cgroup counts, in the same boot.

use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cg;

/// What the userspace reader keeps per cgroup (the document's fields).
#[derive(Default, Debug)]
#[allow(dead_code)] // the fields are gathered to make the work real, not read back
struct Gathered {
    path: Vec<u8>,
    memory_current: u64,
    memory_peak: u64,
    memory_max: Option<u64>,
    usage_usec: u64,
    user_usec: u64,
    system_usec: u64,
    rbytes: u64,
    wbytes: u64,
    rios: u64,
    wios: u64,
    processes: usize,
    threads: usize,
    main_comm: Vec<u8>,
    main_cmdline: Vec<u8>,
    /// Schema 2: `total=` of some and full of cpu, memory and io `.pressure`, µs.
    pressure: [(u64, u64); 3],
    /// Schema 2: low, high, max, oom, oom_kill of `memory.events`.
    memory_events: [u64; 5],
}

/// `total=` of the `some` and `full` lines of a `*.pressure` file.
fn pressure_totals(text: &str) -> (u64, u64) {
    let mut out = (0, 0);
    for line in text.lines() {
        let total = line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("total="))
            .map_or(0, num);
        match line.split_whitespace().next() {
            Some("some") => out.0 = total,
            Some("full") => out.1 = total,
            _ => {}
        }
    }
    out
}

fn num(s: &str) -> u64 {
    s.trim().parse().unwrap_or(0)
}

fn gather_one(dir: &Path, path: Vec<u8>) -> Gathered {
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_default();
    let mut g = Gathered {
        path,
        ..Default::default()
    };
    g.memory_current = num(&read("memory.current"));
    g.memory_peak = num(&read("memory.peak"));
    let max = read("memory.max");
    g.memory_max = (max.trim() != "max").then(|| num(&max));
    for line in read("cpu.stat").lines() {
        let mut it = line.split_whitespace();
        match (it.next(), it.next()) {
            (Some("usage_usec"), Some(v)) => g.usage_usec = num(v),
            (Some("user_usec"), Some(v)) => g.user_usec = num(v),
            (Some("system_usec"), Some(v)) => g.system_usec = num(v),
            _ => {}
        }
    }
    for line in read("io.stat").lines() {
        for kv in line.split_whitespace().skip(1) {
            if let Some((k, v)) = kv.split_once('=') {
                match k {
                    "rbytes" => g.rbytes += num(v),
                    "wbytes" => g.wbytes += num(v),
                    "rios" => g.rios += num(v),
                    "wios" => g.wios += num(v),
                    _ => {}
                }
            }
        }
    }
    for (i, f) in ["cpu.pressure", "memory.pressure", "io.pressure"]
        .iter()
        .enumerate()
    {
        g.pressure[i] = pressure_totals(&read(f));
    }
    for line in read("memory.events").lines() {
        let mut it = line.split_whitespace();
        let i = match it.next() {
            Some("low") => 0,
            Some("high") => 1,
            Some("max") => 2,
            Some("oom") => 3,
            Some("oom_kill") => 4,
            _ => continue,
        };
        g.memory_events[i] = it.next().map_or(0, num);
    }
    let procs = read("cgroup.procs");
    g.processes = procs.lines().count();
    g.threads = read("cgroup.threads").lines().count();
    if let Some(pid) = procs.lines().next() {
        g.main_comm = fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
        g.main_cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    }
    g
}

fn gather(dir: &Path, prefix: &[u8], out: &mut Vec<Gathered>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let mut p = prefix.to_vec();
        p.push(b'/');
        p.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(
            e.file_name().as_os_str(),
        ));
        let d = e.path();
        out.push(gather_one(&d, p.clone()));
        gather(&d, &p, out);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(counts: &[usize], runs: usize, proc_path: &str) -> Result<()> {
    let exe = std::env::current_exe()?;
    let top = cg::make_tree(b"/bench")?;
    let mut children: Vec<Child> = vec![];
    println!(
        "KMODBENCH header cgroups_total module_read_us module_read_parse_us userspace_us ratio"
    );
    let mut have = 0;
    for &n in counts {
        while have < n {
            let d = top.join(format!("c{have:05}"));
            fs::create_dir(&d)?;
            children.push(cg::spawn_in(&d, Command::new(&exe).arg("pause"))?);
            have += 1;
        }
        let (mut m, mut mp, mut u) = (vec![], vec![], vec![]);
        let mut listed = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let raw = fs::read(proc_path).with_context(|| format!("read {proc_path}"))?;
            m.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            let raw2 = fs::read(proc_path)?;
            let snap = crate::doc::parse(&raw2)?;
            mp.push(t.elapsed().as_secs_f64() * 1e6);
            listed = snap.cgroups.len();
            std::hint::black_box(raw);
            let t = Instant::now();
            let mut out = Vec::with_capacity(listed);
            gather(Path::new(cg::ROOT), b"", &mut out);
            u.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(out);
        }
        let (m, mp, u) = (median(&mut m), median(&mut mp), median(&mut u));
        println!("KMODBENCH {n} {listed} {m:.0} {mp:.0} {u:.0} {:.3}", m / u);
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    cg::remove_tree(&top)?;
    Ok(())
}
