//! cgroup v2 helpers for the guest: make trees, start processes inside cgroups, read interface files.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

pub const ROOT: &str = "/sys/fs/cgroup";

/// Absolute cgroupfs directory of a cgroup path given as bytes from the root (`/a/b`).
pub fn dir(path: &[u8]) -> PathBuf {
    let mut p = PathBuf::from(ROOT);
    p.push(OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path)));
    p
}

/// Creates every level of `path` and enables `cpu memory io pids` in each parent's
/// `cgroup.subtree_control`, so every level has the controllers (as the kubelet's trees do).
pub fn make_tree(path: &[u8]) -> Result<PathBuf> {
    let mut cur = PathBuf::from(ROOT);
    for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        enable_controllers(&cur)?;
        cur.push(OsStr::from_bytes(comp));
        if !cur.exists() {
            fs::create_dir(&cur).with_context(|| format!("mkdir {}", cur.display()))?;
        }
    }
    Ok(cur)
}

pub fn enable_controllers(dir: &Path) -> Result<()> {
    let ctl = dir.join("cgroup.subtree_control");
    let have = fs::read_to_string(&ctl).with_context(|| format!("read {}", ctl.display()))?;
    if ["cpu", "memory", "io", "pids"]
        .iter()
        .all(|c| have.split_whitespace().any(|h| h == *c))
    {
        return Ok(());
    }
    fs::write(&ctl, "+cpu +memory +io +pids")
        .with_context(|| format!("enable controllers in {}", ctl.display()))
}

/// Starts `cmd` with its process already in the cgroup at `dir` (it moves itself between fork and
/// exec, so every child it forks is born inside too).
pub fn spawn_in(dir: &Path, cmd: &mut Command) -> Result<Child> {
    let procs = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .with_context(|| format!("open {}/cgroup.procs", dir.display()))?;
    use std::os::fd::AsRawFd;
    let fd = procs.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe write(2) on an already open fd.
    unsafe {
        cmd.pre_exec(move || {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {cmd:?} in {}", dir.display()))?;
    drop(procs);
    Ok(child)
}

pub fn read(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))
}

pub fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let s = read(dir, file)?;
    s.trim()
        .parse()
        .with_context(|| format!("{}/{file}: not a number: {s:?}", dir.display()))
}

/// `memory.max`: `None` for `max`.
pub fn read_limit(dir: &Path) -> Result<Option<u64>> {
    let s = read(dir, "memory.max")?;
    match s.trim() {
        "max" => Ok(None),
        n => Ok(Some(
            n.parse().with_context(|| format!("memory.max {n:?}"))?,
        )),
    }
}

/// `usage_usec` of `cpu.stat`, in ns.
pub fn cpu_usage_ns(dir: &Path) -> Result<u64> {
    let s = read(dir, "cpu.stat")?;
    for line in s.lines() {
        if let Some(v) = line.strip_prefix("usage_usec ") {
            return Ok(v.trim().parse::<u64>()? * 1000);
        }
    }
    bail!("{}/cpu.stat has no usage_usec", dir.display())
}

pub fn pids(dir: &Path, file: &str) -> Result<Vec<u32>> {
    read(dir, file)?
        .lines()
        .map(|l| {
            l.trim()
                .parse::<u32>()
                .with_context(|| format!("{file}: {l:?}"))
        })
        .collect()
}

pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .with_context(|| format!("open {}", p.display()))?;
    f.write_all(value.as_bytes())
        .with_context(|| format!("write {value:?} to {}", p.display()))
}

/// Removes a cgroup and everything below it; processes inside are killed first.
pub fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    if dir.join("cgroup.kill").exists() {
        let _ = write(dir, "cgroup.kill", "1");
    }
    for _ in 0..500 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(e).with_context(|| format!("rmdir {}", dir.display())),
        }
    }
    bail!("rmdir {}: still busy", dir.display())
}

/// Every cgroup directory below the root, as paths from the root (`/a/b`), parents first.
pub fn walk(dir: &Path, prefix: &[u8], out: &mut Vec<Vec<u8>>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if !e.file_type()?.is_dir() {
            continue;
        }
        let mut p = prefix.to_vec();
        p.push(b'/');
        p.extend_from_slice(e.file_name().as_bytes());
        out.push(p.clone());
        walk(&e.path(), &p, out)?;
    }
    Ok(())
}

/// The `total=` of the `some` and `full` lines of a `*.pressure` file, in µs.
pub fn pressure_totals_us(dir: &Path, file: &str) -> Result<(u64, u64)> {
    let s = read(dir, file)?;
    let total = |kind: &str| -> Result<u64> {
        let line = s
            .lines()
            .find(|l| l.split_whitespace().next() == Some(kind))
            .with_context(|| format!("{}/{file}: no {kind} line", dir.display()))?;
        let v = line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("total="))
            .with_context(|| format!("{}/{file}: no total= in {line:?}", dir.display()))?;
        v.parse()
            .with_context(|| format!("{}/{file}: total {v:?}", dir.display()))
    };
    Ok((total("some")?, total("full")?))
}

/// One `key value` line of a flat-keyed file (`memory.events`, `cpu.stat`).
pub fn keyed_u64(dir: &Path, file: &str, key: &str) -> Result<u64> {
    let s = read(dir, file)?;
    for line in s.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some(key) {
            let v = it.next().unwrap_or("");
            return v
                .parse()
                .with_context(|| format!("{}/{file}: {key} {v:?}", dir.display()));
        }
    }
    bail!("{}/{file} has no {key}", dir.display())
}
