//! The checks of issue 4, run in the guest against the real module.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use stressmix_api::kmod::{Cgroup, KString, Snapshot};

use crate::cg;
use crate::contention;
use crate::doc;
use crate::loads::hex;

pub const PROC: &str = "/proc/stressmix";
const MIB: u64 = 1 << 20;
const DISK_BYTES: u64 = 32 * MIB;
const MEM_BYTES: u64 = 48 * MIB;
const MEM_LIMIT: u64 = 128 * MIB;
const SYSCALLS: u64 = 100_000;

fn container_id(n: u32) -> String {
    format!("{:0>64}", format!("5eed{n:04x}c0ffee{n:08x}"))
}

struct Tree {
    cpu: Vec<u8>,
    mem: Vec<u8>,
    disk: Vec<u8>,
    sys: Vec<u8>,
}

/// kind-shaped trees: the systemd driver's under a kind node's docker scope, the cgroupfs
/// driver's under /kubepods.
fn tree() -> Tree {
    let node = format!("/system.slice/docker-{}.scope", container_id(0xa0));
    let pods =
        format!("{node}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice");
    let pod =
        format!("{pods}/kubelet-kubepods-burstable-pod0c1d2e3f_4a5b_6c7d_8e9f_a0b1c2d3e4f5.slice");
    Tree {
        cpu: format!("{pod}/cri-containerd-{}.scope", container_id(1)).into_bytes(),
        mem: format!("{pod}/cri-containerd-{}.scope", container_id(2)).into_bytes(),
        disk: format!(
            "/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/{}",
            container_id(3)
        )
        .into_bytes(),
        sys: format!(
            "/kubepods/besteffort/pod2c3d4e5f-6071-8293-a4b5-c6d7e8f90a1b/{}",
            container_id(4)
        )
        .into_bytes(),
    }
}

struct Report {
    failed: Vec<String>,
    passed: usize,
}

impl Report {
    fn check(&mut self, name: &str, f: impl FnOnce() -> Result<()>) {
        let start = Instant::now();
        match f() {
            Ok(()) => {
                self.passed += 1;
                println!("KMODTEST PASS {name} ({} ms)", start.elapsed().as_millis());
            }
            Err(e) => {
                println!("KMODTEST FAIL {name}: {e:#}");
                self.failed.push(name.to_string());
            }
        }
    }
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("current_exe")
}

pub(crate) fn find<'a>(s: &'a Snapshot, path: &[u8]) -> Result<&'a Cgroup> {
    let k = KString::from_bytes(path);
    s.cgroups
        .iter()
        .find(|c| c.path == k)
        .with_context(|| format!("{} not in the document", String::from_utf8_lossy(path)))
}

pub(crate) fn wait_for(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    while !f()? {
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub(crate) fn within(got: u64, want: u64, pct: f64) -> bool {
    (got as f64 - want as f64).abs() <= want as f64 * pct / 100.0
}

pub fn run(disk: &str) -> Result<()> {
    let t = tree();
    let mut r = Report {
        failed: vec![],
        passed: 0,
    };
    let mut children: Vec<Child> = vec![];
    let exe = exe()?;

    r.check("start-loads", || {
        for p in [&t.cpu, &t.mem, &t.disk, &t.sys] {
            cg::make_tree(p)?;
        }
        cg::write(&cg::dir(&t.mem), "memory.max", &MEM_LIMIT.to_string())?;
        children.push(cg::spawn_in(&cg::dir(&t.cpu), Command::new(&exe).arg("spin"))?);
        children.push(cg::spawn_in(
            &cg::dir(&t.mem),
            Command::new(&exe).args(["hold-memory", &MEM_BYTES.to_string()]),
        )?);
        let disk_script = format!(
            "dd if=/dev/zero of={disk}/load bs=1M count={} conv=fsync 2>/dev/null && sync && \
             echo 3 > /proc/sys/vm/drop_caches && dd if={disk}/load of=/dev/null bs=1M 2>/dev/null && \
             touch /tmp/disk.done; exec sleep 100000",
            DISK_BYTES / MIB
        );
        children.push(cg::spawn_in(&cg::dir(&t.disk), Command::new("sh").args(["-c", &disk_script]))?);
        let sys_script = format!(
            "dd if=/dev/zero of=/dev/null bs=1 count={SYSCALLS} 2>/dev/null && touch /tmp/sys.done; \
             exec sleep 100000"
        );
        children.push(cg::spawn_in(&cg::dir(&t.sys), Command::new("sh").args(["-c", &sys_script]))?);
        let mem_dir = cg::dir(&t.mem);
        wait_for("memory load resident", Duration::from_secs(120), || {
            Ok(cg::read_u64(&mem_dir, "memory.current")? >= MEM_BYTES)
        })?;
        wait_for("disk load", Duration::from_secs(300), || Ok(Path::new("/tmp/disk.done").exists()))?;
        wait_for("syscall load", Duration::from_secs(300), || Ok(Path::new("/tmp/sys.done").exists()))?;
        let cpu_dir = cg::dir(&t.cpu);
        wait_for("1 s of cpu load", Duration::from_secs(60), || {
            Ok(cg::cpu_usage_ns(&cpu_dir)? >= 1_000_000_000)
        })
    });

    r.check("live-document-parses-and-cpu-is-bracketed", || {
        let cpu_dir = cg::dir(&t.cpu);
        let before = cg::cpu_usage_ns(&cpu_dir)?;
        let (raw, s) = doc::read(PROC)?;
        let after = cg::cpu_usage_ns(&cpu_dir)?;
        fs::write("/tmp/sample-all.json", &raw)?;
        let got = find(&s, &t.cpu)?.cpu.usage_ns;
        ensure!(
            got as f64 >= before as f64 * 0.99 && got as f64 <= after as f64 * 1.01,
            "cpu usage {got} ns outside cpu.stat bracket [{before}, {after}]"
        );
        Ok(())
    });

    // Freeze the CPU load so every counter is still while we compare.
    if let Some(spinner) = children.first() {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(spinner.id() as i32, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(300));
    }

    r.check("cpu-matches-cpu.stat-within-1pct", || {
        let (_, s) = doc::read(PROC)?;
        let mut compared = 0;
        for c in &s.cgroups {
            let dir = cg::dir(&c.path.to_bytes()?);
            if has_children(&dir)? {
                continue; // the document counts only a cgroup's own tasks; cpu.stat is hierarchical
            }
            let want = cg::cpu_usage_ns(&dir)?;
            ensure!(
                within(c.cpu.usage_ns, want, 1.0) || c.cpu.usage_ns.abs_diff(want) < 1_000_000,
                "{}: usage {} ns, cpu.stat {} ns",
                c.path,
                c.cpu.usage_ns,
                want
            );
            ensure!(
                c.cpu.user_ns + c.cpu.system_ns <= c.cpu.usage_ns * 2 + 100_000_000,
                "{}: user+system",
                c.path
            );
            compared += 1;
        }
        let cpu = find(&s, &t.cpu)?;
        ensure!(
            cpu.cpu.usage_ns >= 1_000_000_000,
            "cpu load used only {} ns",
            cpu.cpu.usage_ns
        );
        ensure!(
            cpu.cpu.user_ns > cpu.cpu.system_ns,
            "spin is user time: {:?}",
            cpu.cpu
        );
        println!(
            "  compared {compared} leaf cgroups; cpu load {} ns",
            cpu.cpu.usage_ns
        );
        Ok(())
    });

    r.check("memory-matches-memory.current", || {
        let mut compared = 0;
        for attempt in 0..5 {
            let (_, s) = doc::read(PROC)?;
            let mut unstable = false;
            for c in &s.cgroups {
                let Some(m) = c.memory else { continue };
                let dir = cg::dir(&c.path.to_bytes()?);
                let now = cg::read_u64(&dir, "memory.current")?;
                if now != m.current_bytes {
                    ensure!(
                        attempt < 4,
                        "{}: current {} vs memory.current {now}",
                        c.path,
                        m.current_bytes
                    );
                    unstable = true;
                    break;
                }
                ensure!(
                    m.peak_bytes == cg::read_u64(&dir, "memory.peak")?,
                    "{}: peak",
                    c.path
                );
                ensure!(m.limit_bytes == cg::read_limit(&dir)?, "{}: limit", c.path);
                compared += 1;
            }
            if !unstable {
                let mem = find(&s, &t.mem)?
                    .memory
                    .context("no memory on mem container")?;
                ensure!(
                    mem.current_bytes >= MEM_BYTES,
                    "memory load {}",
                    mem.current_bytes
                );
                ensure!(
                    mem.limit_bytes == Some(MEM_LIMIT),
                    "limit {:?}",
                    mem.limit_bytes
                );
                ensure!(
                    find(&s, &t.cpu)?
                        .memory
                        .context("cpu memory")?
                        .limit_bytes
                        .is_none()
                );
                println!(
                    "  compared {compared} cgroups exactly; memory load {} bytes",
                    mem.current_bytes
                );
                return Ok(());
            }
            compared = 0;
        }
        bail!("memory never stable")
    });

    r.check("io-counters-match-the-loads", || {
        let (_, s) = doc::read(PROC)?;
        let d = find(&s, &t.disk)?.io;
        println!("  disk cgroup io {d:?}");
        ensure!(
            (DISK_BYTES..DISK_BYTES + MIB).contains(&d.write_bytes),
            "write_bytes {}",
            d.write_bytes
        );
        // drop_caches skips pages that are busy at that instant, so a few pages of the file may be
        // read from the cache instead of the disk (seen once: 14 KiB short of 32 MiB on 6.1).
        ensure!(
            (DISK_BYTES - MIB..DISK_BYTES + MIB).contains(&d.read_bytes),
            "read_bytes {}",
            d.read_bytes
        );
        ensure!(
            d.write_chars >= DISK_BYTES && d.read_chars >= DISK_BYTES,
            "chars {d:?}"
        );
        ensure!(
            d.write_syscalls >= DISK_BYTES / MIB,
            "write syscalls {}",
            d.write_syscalls
        );
        let y = find(&s, &t.sys)?.io;
        println!("  syscall cgroup io {y:?}");
        ensure!(
            (SYSCALLS..SYSCALLS + 500).contains(&y.read_syscalls),
            "read_syscalls {}",
            y.read_syscalls
        );
        ensure!(
            (SYSCALLS..SYSCALLS + 500).contains(&y.write_syscalls),
            "write_syscalls {}",
            y.write_syscalls
        );
        ensure!(
            y.read_chars >= SYSCALLS && y.write_chars >= SYSCALLS,
            "chars {y:?}"
        );
        ensure!(
            y.write_bytes < MIB,
            "no storage writes expected: {}",
            y.write_bytes
        );
        Ok(())
    });

    // Schema 2: a CPU hog throttled at 10 %, an OOM kill, pressure from both.
    let hogs = contention::paths(container_id);
    let mut throttled = None;
    r.check("start-throttled-cpu-hog", || {
        throttled = Some(contention::start_throttled(&exe, &hogs.throttled)?);
        Ok(())
    });
    r.check("oom-kill-matches-memory.events", || {
        contention::oom_kill(&exe, &hogs.oom)
    });
    r.check(
        "memory-events-match-memory.events",
        contention::memory_events,
    );
    r.check("pressure-matches-pressure-files", || {
        contention::pressure(&hogs)
    });
    r.check("cpu-throttling-matches-cpu.stat-and-quota", || {
        contention::throttling(throttled.as_ref(), &hogs.throttled)
    });
    // Stopped by the throttling check; resumed with the other loads at the end.
    children.extend(throttled.map(|(child, _)| child));

    r.check("tasks-and-main-process-match-procfs", || {
        let (_, s) = doc::read(PROC)?;
        for c in &s.cgroups {
            let dir = cg::dir(&c.path.to_bytes()?);
            let procs = cg::pids(&dir, "cgroup.procs")?;
            let threads = cg::pids(&dir, "cgroup.threads")?;
            ensure!(
                c.tasks.processes as usize == procs.len(),
                "{}: processes {:?} vs {procs:?}",
                c.path,
                c.tasks
            );
            ensure!(
                c.tasks.threads as usize == threads.len(),
                "{}: threads {:?}",
                c.path,
                c.tasks
            );
            let Some(main) = &c.main_process else {
                continue;
            };
            ensure!(
                procs.contains(&main.pid),
                "{}: main pid {} not in {procs:?}",
                c.path,
                main.pid
            );
            let comm = fs::read(format!("/proc/{}/comm", main.pid))?;
            ensure!(
                main.name.to_bytes()? == comm[..comm.len() - 1],
                "{}: name {}",
                c.path,
                main.name
            );
            let cmdline = fs::read(format!("/proc/{}/cmdline", main.pid))?;
            let want: Vec<KString> = split_cmdline(&cmdline);
            ensure!(
                main.cmdline.as_ref() == Some(&want),
                "{}: cmdline {:?} vs {want:?}",
                c.path,
                main.cmdline
            );
        }
        let disk = find(&s, &t.disk)?;
        ensure!(
            disk.main_process
                .as_ref()
                .is_some_and(|m| m.name.as_latin1() == "sleep"),
            "disk main"
        );
        Ok(())
    });

    r.check("ids-levels-and-completeness", || {
        let (_, s) = doc::read(PROC)?;
        ensure!(!s.truncated, "truncated");
        let mut dirs = vec![];
        cg::walk(Path::new(cg::ROOT), b"", &mut dirs)?;
        let listed: Vec<Vec<u8>> = s
            .cgroups
            .iter()
            .map(|c| c.path.to_bytes())
            .collect::<Result<_, _>>()?;
        let mut sorted = listed.clone();
        sorted.sort();
        let mut want = dirs.clone();
        want.sort();
        ensure!(
            sorted == want,
            "document lists {} cgroups, cgroupfs has {}",
            sorted.len(),
            want.len()
        );
        for (i, c) in s.cgroups.iter().enumerate() {
            let p = &listed[i];
            let ino = fs::metadata(cg::dir(p))?.ino();
            ensure!(c.id == ino, "{}: id {} vs inode {ino}", c.path, c.id);
            if let Some(cut) = p.iter().rposition(|&b| b == b'/').filter(|&x| x > 0) {
                ensure!(
                    listed[..i].iter().any(|q| q[..] == p[..cut]),
                    "{}: parent after child",
                    c.path
                );
            }
        }
        Ok(())
    });

    r.check("system-matches-proc-stat-and-meminfo", system);
    r.check("strings-are-escaped-and-round-trip", || escapes(&exe));
    r.check("one-thousand-cgroups", thousand);
    r.check("permissions", || permissions(&exe));
    r.check("churn-1000-reads", || churn(&exe));

    // The loads stay up: the guest script reloads the module and reads again.
    for c in &mut children {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
    }
    std::mem::forget(children);
    println!(
        "KMODTEST SUMMARY {} passed, {} failed",
        r.passed,
        r.failed.len()
    );
    if !r.failed.is_empty() {
        bail!("failed: {}", r.failed.join(", "));
    }
    Ok(())
}

/// The `cpu` line of /proc/stat in USER_HZ ticks: user nice system idle iowait irq softirq steal guest
/// guest_nice.
fn proc_stat_cpu() -> Result<Vec<u64>> {
    let s = fs::read_to_string("/proc/stat")?;
    let line = s.lines().next().context("empty /proc/stat")?;
    line.split_whitespace()
        .skip(1)
        .map(|v| v.parse::<u64>().context("/proc/stat"))
        .collect()
}

fn meminfo(key: &str) -> Result<u64> {
    let s = fs::read_to_string("/proc/meminfo")?;
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let kb: u64 = rest.trim().trim_end_matches(" kB").parse()?;
            return Ok(kb * 1024);
        }
    }
    bail!("no {key} in /proc/meminfo")
}

/// Node-wide fields against /proc/stat, /proc/meminfo and /proc/loadavg read just before and after.
fn system() -> Result<()> {
    let before = proc_stat_cpu()?;
    let (_, s) = doc::read(PROC)?;
    let after = proc_stat_cpu()?;
    let t = s.system.cpu.time_ns;
    let got = [
        t.user,
        t.nice,
        t.system,
        t.idle,
        t.iowait,
        t.irq,
        t.softirq,
        t.steal,
        t.guest,
        t.guest_nice,
    ];
    // USER_HZ is 100 on x86: one tick is 10 ms.
    for (i, ns) in got.iter().enumerate() {
        let ticks = ns / 10_000_000;
        let (lo, hi) = (before[i].saturating_sub(1), after[i] + 1);
        ensure!(
            (lo..=hi).contains(&ticks),
            "cpu state {i}: {ticks} ticks outside /proc/stat [{}, {}]",
            before[i],
            after[i]
        );
    }
    let m = s.system.memory;
    ensure!(
        m.total_bytes == meminfo("MemTotal")?,
        "MemTotal {}",
        m.total_bytes
    );
    for (name, v) in [
        ("MemFree", m.free_bytes),
        ("MemAvailable", m.available_bytes),
    ] {
        let want = meminfo(name)?;
        ensure!(within(v, want, 2.0), "{name}: {v} vs /proc/meminfo {want}");
    }
    ensure!(s.system.cpu.online as usize == std::thread::available_parallelism()?.get());
    let one = |raw: String| -> Result<f64> {
        Ok(raw.split_whitespace().next().context("loadavg")?.parse()?)
    };
    let lo = one(fs::read_to_string("/proc/loadavg")?)?;
    let (_, s) = doc::read(PROC)?;
    let hi = one(fs::read_to_string("/proc/loadavg")?)?;
    let got = s.system.load_average.one;
    ensure!(
        got >= lo.min(hi) - 0.011 && got <= lo.max(hi) + 0.011,
        "load {got} outside /proc/loadavg [{lo}, {hi}]"
    );
    Ok(())
}

fn has_children(dir: &Path) -> Result<bool> {
    for e in fs::read_dir(dir)? {
        if e?.file_type()?.is_dir() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn split_cmdline(raw: &[u8]) -> Vec<KString> {
    let body = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return vec![];
    }
    body.split(|&b| b == 0).map(KString::from_bytes).collect()
}

fn escapes(exe: &Path) -> Result<()> {
    let name: &[u8] = b"we\"ird\\name\ttab \xff\xfe caf\xc3\xa9 {}";
    let path = [b"/stressmix-escape/".as_slice(), name].concat();
    let dir = cg::make_tree(&path)?;
    let comm: &[u8] = b"q\"b\\t\tn\n\xff\xc3\xa9";
    let args: Vec<&[u8]> = vec![
        b"quote\"d",
        b"back\\slash",
        b"tab\there",
        b"new\nline",
        b"",
        b"bad\xff\xfeutf8",
        b"caf\xc3\xa9",
        b"ctl\x01\x1f\x7f",
    ];
    let mut cmd = Command::new(exe);
    cmd.args(["pause", "--comm-hex", &hex(comm)]);
    cmd.args(args.iter().map(|a| OsStr::from_bytes(a)));
    let mut child = cg::spawn_in(&dir, &mut cmd)?;
    let pid = child.id();
    let result = (|| {
        wait_for("comm set", Duration::from_secs(30), || {
            Ok(fs::read(format!("/proc/{pid}/comm"))?.starts_with(b"q\""))
        })?;
        let (raw, s) = doc::read(PROC)?;
        let text = String::from_utf8(raw)?;
        fs::write("/tmp/sample-escapes.json", &text)?;
        for needle in [
            r#"we\"ird\\name\u0009tab \u00ff\u00fe caf\u00c3\u00a9 {}"#,
            r#"new\u000aline"#,
            r#"ctl\u0001\u001f\u007f"#,
        ] {
            ensure!(text.contains(needle), "document lacks {needle}");
        }
        let c = find(&s, &path)?;
        let main = c.main_process.as_ref().context("no main process")?;
        ensure!(main.pid == pid, "main pid {} vs {pid}", main.pid);
        ensure!(main.name.to_bytes()? == comm, "name {:?}", main.name);
        let got = main.cmdline.as_ref().context("cmdline unavailable")?;
        let got_args: Vec<Vec<u8>> = got
            .iter()
            .skip(4)
            .map(KString::to_bytes)
            .collect::<Result<_, _>>()?;
        let want: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        ensure!(got_args == want, "args {got:?}");
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    cg::remove_tree(&cg::dir(b"/stressmix-escape"))?;
    result
}

fn thousand() -> Result<()> {
    let top = cg::make_tree(b"/stressmix-scale")?;
    for i in 0..1000 {
        fs::create_dir(top.join(format!("c{i:04}")))?;
    }
    let start = Instant::now();
    let (raw, s) = doc::read(PROC)?;
    let took = start.elapsed();
    let result = (|| {
        ensure!(!s.truncated, "truncated at {} cgroups", s.cgroups.len());
        let n = s
            .cgroups
            .iter()
            .filter(|c| c.path.as_latin1().starts_with("/stressmix-scale/c"))
            .count();
        ensure!(n == 1000, "{n} of 1000 listed");
        println!(
            "  {} cgroups, {} bytes, read+parse {} ms",
            s.cgroups.len(),
            raw.len(),
            took.as_millis()
        );
        Ok(())
    })();
    cg::remove_tree(&top)?;
    result
}

fn permissions(exe: &Path) -> Result<()> {
    let mode = fs::metadata(PROC)?.permissions().mode() & 0o777;
    ensure!(mode == 0o400, "mode {mode:o}");
    let out = Command::new(exe)
        .args(["open-without-cap", PROC])
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout);
    ensure!(
        said.trim() == "errno 1",
        "root without CAP_SYS_ADMIN: {said}"
    );
    let out = Command::new(exe)
        .args(["open-without-cap", PROC])
        .uid(65534)
        .gid(65534)
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout);
    ensure!(said.trim() == "errno 13", "uid 65534: {said}");
    Ok(())
}

/// Drops CAP_SYS_ADMIN from this process, opens `path`, prints `ok` or `errno N`.
pub fn open_without_cap(path: &str) -> Result<()> {
    const CAP_SYS_ADMIN: u32 = 21; // linux/capability.h

    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data structs, as the ABI defines.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) != 0 {
            bail!("capget: {}", std::io::Error::last_os_error());
        }
        let bit = 1u32 << CAP_SYS_ADMIN;
        d[0].effective &= !bit;
        d[0].permitted &= !bit;
        if libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) != 0 {
            bail!("capset: {}", std::io::Error::last_os_error());
        }
    }
    match fs::File::open(path) {
        Ok(_) => println!("ok"),
        Err(e) => println!("errno {}", e.raw_os_error().unwrap_or(-1)),
    }
    Ok(())
}

fn churn(exe: &Path) -> Result<()> {
    let top = cg::make_tree(b"/stressmix-churn")?;
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let forked = Arc::new(AtomicU64::new(0));
    let mut workers = vec![];
    {
        let (stop, made, top) = (stop.clone(), made.clone(), top.clone());
        workers.push(std::thread::spawn(move || -> Result<()> {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let d = top.join(format!("g{}", i % 16));
                if d.exists() {
                    cg::remove_tree(&d)?;
                } else {
                    fs::create_dir(&d)?;
                    let mut c = cg::spawn_in(&d, &mut Command::new("true"))?;
                    c.wait()?;
                }
                made.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok(())
        }));
    }
    {
        let (stop, forked, top) = (stop.clone(), forked.clone(), top.clone());
        let exe = exe.to_path_buf();
        workers.push(std::thread::spawn(move || -> Result<()> {
            let d = top.join("forks");
            fs::create_dir_all(&d)?;
            while !stop.load(Ordering::Relaxed) {
                let mut c = cg::spawn_in(
                    &d,
                    Command::new("sh").args(["-c", "true & true & true & wait"]),
                )?;
                c.wait()?;
                let _ = &exe;
                forked.fetch_add(4, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let mut result = Ok(());
    let start = Instant::now();
    for i in 0..1000 {
        let raw = match fs::read(PROC) {
            Ok(r) => r,
            Err(e) => {
                result = Err(anyhow::anyhow!("read {i}: {e}"));
                break;
            }
        };
        if let Err(e) = doc::parse(&raw) {
            let _ = fs::write("/tmp/churn-bad.json", &raw);
            result = Err(e.context(format!("read {i} invalid")));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        match w.join() {
            Ok(r) => r?,
            Err(_) => bail!("churn worker panicked"),
        }
    }
    cg::remove_tree(&top)?;
    result?;
    let (m, f) = (made.load(Ordering::Relaxed), forked.load(Ordering::Relaxed));
    println!(
        "  1000 reads in {} ms while {m} cgroup creates/removes and {f} forks",
        start.elapsed().as_millis()
    );
    ensure!(
        m >= 10 && f >= 10,
        "churn too small to mean anything: {m} cgroup ops, {f} forks"
    );
    Ok(())
}
