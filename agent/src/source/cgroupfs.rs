//! The userspace fallback: the module's document built from cgroupfs and procfs.
//!
//! Same fields, same meaning where cgroupfs allows it:
//! - memory: `memory.current`, `memory.peak` (kernels before 5.19 lack it: the current value stands
//!   in), `memory.max`; `None` where the memory controller is not enabled.
//! - CPU: `cpu.stat` is hierarchical, the module's `usage_ns` counts only a cgroup's own tasks; the
//!   fallback subtracts the children's totals to match (exact for leaves, i.e. containers).
//! - I/O: the module sums per-task accounting; cgroupfs only has block-layer `io.stat`, so here
//!   `read_bytes`/`write_bytes` are `rbytes`/`wbytes` and the "syscall" counts are block I/O
//!   operations (`rios`/`wios`), own share only like CPU. Batches say `source: cgroupfs`.
//! - pressure, memory events and throttling from `*.pressure`, `memory.events` and `cpu.stat`
//!   (see [`super::kernel_files`]), hierarchical as the files are.
//! - tasks from `cgroup.procs`/`cgroup.threads`; the main process is the one that started first
//!   (`/proc/<pid>/stat` field 22), with its `comm` and `cmdline`.
//!
//! A cgroup removed while it is being read is skipped (it would vanish next interval anyway).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use stressmix_api::kmod::{
    CgroupCpu, CgroupFilter, CgroupIo, CgroupMemory, CgroupPressure, CgroupTasks, CpuThrottling,
    KString, MainProcess, MemoryEvents, SCHEMA_VERSION, Snapshot, System,
};

use super::SourceError;
use super::host;
use super::kernel_files;
use crate::cgroup_path::is_container_id;

pub struct CgroupfsReader {
    root: PathBuf,
    proc_root: PathBuf,
    containers_only: bool,
    ns_per_tick: u64,
}

/// Hierarchical counters as cgroupfs shows them, before the children are subtracted.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    usage_us: u64,
    user_us: u64,
    system_us: u64,
    rbytes: u64,
    wbytes: u64,
    rios: u64,
    wios: u64,
}

impl Totals {
    fn minus(&self, other: &Totals) -> Totals {
        Totals {
            usage_us: self.usage_us.saturating_sub(other.usage_us),
            user_us: self.user_us.saturating_sub(other.user_us),
            system_us: self.system_us.saturating_sub(other.system_us),
            rbytes: self.rbytes.saturating_sub(other.rbytes),
            wbytes: self.wbytes.saturating_sub(other.wbytes),
            rios: self.rios.saturating_sub(other.rios),
            wios: self.wios.saturating_sub(other.wios),
        }
    }

    fn plus(&self, other: &Totals) -> Totals {
        Totals {
            usage_us: self.usage_us.saturating_add(other.usage_us),
            user_us: self.user_us.saturating_add(other.user_us),
            system_us: self.system_us.saturating_add(other.system_us),
            rbytes: self.rbytes.saturating_add(other.rbytes),
            wbytes: self.wbytes.saturating_add(other.wbytes),
            rios: self.rios.saturating_add(other.rios),
            wios: self.wios.saturating_add(other.wios),
        }
    }
}

struct Entry {
    id: u64,
    level: u32,
    path: String,
    parent: Option<usize>,
    memory: Option<CgroupMemory>,
    totals: Totals,
    tasks: CgroupTasks,
    main_process: Option<MainProcess>,
    pressure: Option<CgroupPressure>,
    memory_events: Option<MemoryEvents>,
    cpu_throttling: Option<CpuThrottling>,
}

impl CgroupfsReader {
    /// `root` is the cgroup v2 mount (`/sys/fs/cgroup`), `proc_root` procfs (`/proc`).
    pub fn new(root: PathBuf, proc_root: PathBuf, containers_only: bool) -> Self {
        CgroupfsReader {
            root,
            proc_root,
            containers_only,
            ns_per_tick: host::ns_per_tick(),
        }
    }

    /// Is this a cgroup v2 hierarchy the fallback can read? cgroup v1 (per-controller hierarchies
    /// with `tasks` files, no `cgroup.controllers` at the root) is named as such.
    pub fn check(&self) -> Result<(), SourceError> {
        let controllers = self.root.join("cgroup.controllers");
        match std::fs::metadata(&controllers) {
            Ok(_) => Ok(()),
            Err(_) if self.looks_like_cgroup_v1() => Err(SourceError::CgroupV1 {
                root: self.root.clone(),
            }),
            Err(source) => Err(SourceError::Read {
                path: controllers,
                source,
            }),
        }
    }

    fn looks_like_cgroup_v1(&self) -> bool {
        self.root.join("tasks").exists()
            || std::fs::read_dir(&self.root).is_ok_and(|dirs| {
                dirs.filter_map(Result::ok)
                    .any(|d| d.path().join("tasks").exists())
            })
    }

    pub fn read(&self) -> Result<Snapshot, SourceError> {
        let timestamp = host::now();
        let proc = |name: &str| host::read_or_empty(&self.proc_root.join(name));
        let system = System {
            memory: host::parse_meminfo(&proc("meminfo")),
            cpu: host::parse_stat(&proc("stat"), self.ns_per_tick),
            load_average: host::parse_loadavg(&proc("loadavg")),
        };
        let kernel_release = proc("sys/kernel/osrelease").trim().to_owned();

        let mut entries = Vec::new();
        let children = std::fs::read_dir(&self.root).map_err(|source| SourceError::Read {
            path: self.root.clone(),
            source,
        })?;
        // Depth-first, pre-order: a parent is always listed before its children (like the module).
        let mut stack: Vec<(PathBuf, u32, Option<usize>)> = sorted_subdirs(children)
            .into_iter()
            .rev()
            .map(|p| (p, 1, None))
            .collect();
        while let Some((dir, level, parent)) = stack.pop() {
            let Some(entry) = self.read_cgroup(&dir, level, parent) else {
                continue;
            };
            let index = entries.len();
            entries.push(entry);
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in sorted_subdirs(children).into_iter().rev() {
                    stack.push((child, level + 1, Some(index)));
                }
            }
        }

        // Each cgroup's own share: its hierarchical totals minus its children's.
        let mut children_sum: HashMap<usize, Totals> = HashMap::new();
        for e in &entries {
            if let Some(p) = e.parent {
                let sum = children_sum.entry(p).or_default();
                *sum = sum.plus(&e.totals);
            }
        }
        let cgroups = entries
            .into_iter()
            .enumerate()
            .filter(|(_, e)| !self.containers_only || is_container_cgroup(&e.path))
            .map(|(i, e)| {
                let own = children_sum.get(&i).map_or(e.totals, |c| e.totals.minus(c));
                stressmix_api::kmod::Cgroup {
                    id: e.id,
                    level: e.level,
                    path: KString::from(e.path.as_str()),
                    memory: e.memory,
                    cpu: CgroupCpu {
                        usage_ns: own.usage_us.saturating_mul(1000),
                        user_ns: own.user_us.saturating_mul(1000),
                        system_ns: own.system_us.saturating_mul(1000),
                    },
                    tasks: e.tasks,
                    io: CgroupIo {
                        read_bytes: own.rbytes,
                        write_bytes: own.wbytes,
                        cancelled_write_bytes: 0,
                        read_chars: 0,
                        write_chars: 0,
                        read_syscalls: own.rios,
                        write_syscalls: own.wios,
                    },
                    main_process: e.main_process,
                    pressure: e.pressure,
                    memory_events: e.memory_events,
                    cpu_throttling: e.cpu_throttling,
                }
            })
            .collect();

        Ok(Snapshot {
            schema_version: SCHEMA_VERSION,
            module_version: KString::from("cgroupfs-fallback"),
            kernel_release: KString::from(kernel_release.as_str()),
            timestamp,
            system,
            filter: if self.containers_only {
                CgroupFilter::Containers
            } else {
                CgroupFilter::All
            },
            cgroups,
            truncated: false,
        })
    }

    fn read_cgroup(&self, dir: &Path, level: u32, parent: Option<usize>) -> Option<Entry> {
        let id = std::fs::metadata(dir).ok()?.ino();
        let rel = dir.strip_prefix(&self.root).ok()?;
        let path = format!("/{}", rel.to_string_lossy());
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let memory = read("memory.current").and_then(|current| {
            let current = current.trim().parse::<u64>().ok()?;
            let peak = read("memory.peak")
                .and_then(|p| p.trim().parse::<u64>().ok())
                .unwrap_or(current);
            let limit_bytes = read("memory.max").and_then(|m| m.trim().parse::<u64>().ok());
            Some(CgroupMemory {
                current_bytes: current,
                peak_bytes: peak,
                limit_bytes,
            })
        });
        let mut totals = Totals::default();
        let stat = read("cpu.stat");
        if let Some(stat) = &stat {
            parse_cpu_stat(stat, &mut totals);
        }
        if let Some(io) = read("io.stat") {
            parse_io_stat(&io, &mut totals);
        }
        // Without cgroup.procs the directory is gone (or is not a cgroup): skip it.
        let procs = read("cgroup.procs")?;
        // A process outside the reader's pid namespace reads as pid 0: it counts, but only a
        // visible pid can be the main process. The agent pod runs with hostPID, so /proc (the
        // proc root) is the host's and every pid is visible.
        let pids: Vec<u32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let visible: Vec<u32> = pids.iter().copied().filter(|&p| p != 0).collect();
        let threads = read("cgroup.threads").map_or(0, |t| t.lines().count());
        Some(Entry {
            id,
            level,
            path,
            parent,
            memory,
            totals,
            tasks: CgroupTasks {
                processes: u32::try_from(pids.len()).unwrap_or(u32::MAX),
                threads: u32::try_from(threads).unwrap_or(u32::MAX),
            },
            main_process: self.main_process(&visible),
            pressure: kernel_files::read_pressure(dir).ok().flatten(),
            memory_events: kernel_files::read_memory_events(dir).ok().flatten(),
            cpu_throttling: stat.as_deref().and_then(kernel_files::parse_cpu_throttling),
        })
    }

    fn main_process(&self, pids: &[u32]) -> Option<MainProcess> {
        let (pid, _) = pids
            .iter()
            .filter_map(|&pid| {
                let stat =
                    std::fs::read_to_string(self.proc_root.join(format!("{pid}/stat"))).ok()?;
                Some((pid, start_time(&stat)?))
            })
            .min_by_key(|&(pid, start)| (start, pid))?;
        let dir = self.proc_root.join(pid.to_string());
        let comm = std::fs::read(dir.join("comm")).unwrap_or_default();
        let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
        let cmdline = std::fs::read(dir.join("cmdline")).ok().map(|raw| {
            let raw = raw.strip_suffix(b"\0").unwrap_or(&raw);
            if raw.is_empty() {
                Vec::new()
            } else {
                raw.split(|&b| b == 0).map(KString::from_bytes).collect()
            }
        });
        Some(MainProcess {
            pid,
            name: KString::from_bytes(comm),
            cmdline,
        })
    }
}

fn sorted_subdirs(dir: std::fs::ReadDir) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// What the module's `containers_only` filter keeps: a last component naming a container.
fn is_container_cgroup(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    let id = match last.strip_suffix(".scope") {
        Some(scope) => scope.rsplit_once('-').map_or(scope, |(_, id)| id),
        None => last,
    };
    is_container_id(id)
}

fn parse_cpu_stat(text: &str, totals: &mut Totals) {
    for (key, value) in kernel_files::keyed_values(text) {
        match key {
            "usage_usec" => totals.usage_us = value,
            "user_usec" => totals.user_us = value,
            "system_usec" => totals.system_us = value,
            _ => {}
        }
    }
}

/// `io.stat`: one line per device, `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`.
fn parse_io_stat(text: &str, totals: &mut Totals) {
    for line in text.lines() {
        for pair in line.split_whitespace().skip(1) {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let value = value.parse::<u64>().unwrap_or(0);
            let slot = match key {
                "rbytes" => &mut totals.rbytes,
                "wbytes" => &mut totals.wbytes,
                "rios" => &mut totals.rios,
                "wios" => &mut totals.wios,
                _ => continue,
            };
            *slot = slot.saturating_add(value);
        }
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time in ticks); the command name (field 2) may hold
/// spaces and parentheses, so count from the last `)`.
fn start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const CID: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn write(dir: &Path, name: &str, text: &str) {
        fs::create_dir_all(dir).expect("mkdir");
        fs::write(dir.join(name), text).expect("write");
    }

    fn cgroup(dir: &Path, usage_us: u64, io: &str, procs: &str, memory: Option<(u64, &str)>) {
        write(dir, "cgroup.procs", procs);
        write(dir, "cgroup.threads", procs);
        write(
            dir,
            "cpu.stat",
            &format!(
                "usage_usec {usage_us}\nuser_usec {}\nsystem_usec {}\nnr_periods 0\n",
                usage_us / 2,
                usage_us / 2
            ),
        );
        write(dir, "io.stat", io);
        if let Some((current, max)) = memory {
            write(dir, "memory.current", &format!("{current}\n"));
            write(dir, "memory.peak", &format!("{}\n", current * 2));
            write(dir, "memory.max", &format!("{max}\n"));
        }
    }

    fn fake_proc(proc_root: &Path, pid: u32, comm: &str, start: u64) {
        let dir = proc_root.join(pid.to_string());
        write(
            &dir,
            "stat",
            &format!(
                "{pid} ({comm} x) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"
            ),
        );
        write(&dir, "comm", &format!("{comm}\n"));
        write(&dir, "cmdline", &format!("{comm}\0--flag\0"));
    }

    struct Tree {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        proc_root: PathBuf,
    }

    fn tree() -> Tree {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("cgroup");
        let proc_root = tmp.path().join("proc");
        write(&root, "cgroup.controllers", "cpu io memory pids\n");
        write(
            &proc_root,
            "meminfo",
            "MemTotal: 1000 kB\nMemFree: 500 kB\nMemAvailable: 600 kB\n",
        );
        write(
            &proc_root,
            "stat",
            "cpu 10 0 10 80 0 0 0 0 0 0\ncpu0 10 0 10 80 0 0 0 0 0 0\n",
        );
        write(&proc_root, "loadavg", "1.00 0.50 0.25 1/1 1\n");
        let pod = root.join("kubepods/burstable/pod6f1c2a9e-3b7d-4c1e-9a2b-0d5e8f7a6b4c");
        cgroup(
            &root.join("kubepods"),
            3000,
            "8:0 rbytes=700 wbytes=70 rios=7 wios=1\n",
            "",
            Some((300, "max")),
        );
        cgroup(
            &root.join("kubepods/burstable"),
            3000,
            "8:0 rbytes=700 wbytes=70 rios=7 wios=1\n",
            "",
            Some((300, "max")),
        );
        cgroup(
            &pod,
            3000,
            "8:0 rbytes=700 wbytes=70 rios=7 wios=1\n",
            "",
            Some((300, "1048576")),
        );
        cgroup(
            &pod.join(CID),
            2000,
            "8:0 rbytes=400 wbytes=40 rios=4 wios=0\n8:16 rbytes=100 wbytes=10 rios=1 wios=1\n",
            "42\n43\n",
            Some((200, "1048576")),
        );
        cgroup(&pod.join("sandbox"), 1000, "", "7\n", None);
        fake_proc(&proc_root, 42, "late", 500);
        fake_proc(&proc_root, 43, "stress", 100);
        Tree {
            _tmp: tmp,
            root,
            proc_root,
        }
    }

    #[test]
    fn reads_a_synthetic_tree_like_the_module_would() {
        let t = tree();
        let reader = CgroupfsReader::new(t.root.clone(), t.proc_root.clone(), false);
        reader.check().expect("v2 root");
        let s = reader.read().expect("reads");
        let paths: Vec<String> = s.cgroups.iter().map(|c| c.path.to_string()).collect();
        let pod = "/kubepods/burstable/pod6f1c2a9e-3b7d-4c1e-9a2b-0d5e8f7a6b4c";
        assert_eq!(
            paths,
            vec![
                "/kubepods".to_owned(),
                "/kubepods/burstable".to_owned(),
                pod.to_owned(),
                format!("{pod}/{CID}"),
                format!("{pod}/sandbox"),
            ],
            "pre-order, root excluded"
        );
        let container = &s.cgroups[3];
        assert_eq!(container.level, 4);
        assert_eq!(
            container.cpu.usage_ns, 2_000_000,
            "leaf: its own usage (2000 us)"
        );
        assert_eq!(container.io.read_bytes, 500, "summed over devices");
        assert_eq!(container.io.write_bytes, 50);
        assert_eq!(container.io.read_syscalls, 5);
        assert_eq!(container.io.write_syscalls, 1);
        let memory = container.memory.expect("memory enabled");
        assert_eq!(
            (memory.current_bytes, memory.peak_bytes, memory.limit_bytes),
            (200, 400, Some(1_048_576))
        );
        assert_eq!(container.tasks.processes, 2);
        let main = container.main_process.as_ref().expect("main process");
        assert_eq!(main.pid, 43, "earliest start time wins");
        assert_eq!(main.name.to_string(), "stress");
        assert_eq!(
            main.cmdline
                .as_ref()
                .map(|c| c.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
            Some(vec!["stress".to_owned(), "--flag".to_owned()])
        );
        // The pod cgroup: hierarchical 3000 us minus children 2000 + 1000 = 0 of its own.
        assert_eq!(s.cgroups[2].cpu.usage_ns, 0);
        assert_eq!(s.cgroups[2].io.read_bytes, 200);
        assert_eq!(
            s.cgroups[2].memory.and_then(|m| m.limit_bytes),
            Some(1_048_576)
        );
        assert_eq!(
            s.cgroups[0].memory.and_then(|m| m.limit_bytes),
            None,
            "max = no limit"
        );
        assert_eq!(s.cgroups[4].memory, None, "memory controller off");
        assert!(s.cgroups.iter().all(|c| c.id != 0));
        assert_eq!(s.system.memory.total_bytes, 1_024_000);
        assert_eq!(s.system.memory.used_bytes, 400 * 1024);
        assert_eq!(s.system.cpu.online, 1);
        assert_eq!(s.system.load_average.one, 1.0);
        assert_eq!(s.filter, CgroupFilter::All);
        // What the module would produce: it round-trips through the shared types.
        let text = serde_json::to_string(&s).expect("serialize");
        let again: Snapshot = serde_json::from_str(&text).expect("parse");
        assert_eq!(again, s);
    }

    #[test]
    fn containers_only_keeps_container_cgroups() {
        let t = tree();
        let s = CgroupfsReader::new(t.root.clone(), t.proc_root.clone(), true)
            .read()
            .expect("reads");
        assert_eq!(s.cgroups.len(), 1);
        assert!(s.cgroups[0].path.to_string().ends_with(CID));
        assert_eq!(s.filter, CgroupFilter::Containers);
        assert_eq!(s.cgroups[0].cpu.usage_ns, 2_000_000);
    }

    #[test]
    fn vanished_or_non_v2_roots() {
        let t = tree();
        // A directory without cgroup.procs (removed mid-walk) is skipped.
        fs::create_dir_all(t.root.join("half-gone")).expect("mkdir");
        let s = CgroupfsReader::new(t.root.clone(), t.proc_root.clone(), false)
            .read()
            .expect("reads");
        assert!(s.cgroups.iter().all(|c| c.path.to_string() != "/half-gone"));
        let missing = CgroupfsReader::new(t.root.join("nope"), t.proc_root.clone(), false);
        assert!(missing.read().is_err());
        assert!(matches!(missing.check(), Err(SourceError::Read { .. })));
    }

    #[test]
    fn cgroup_v1_is_named() {
        let tmp = tempfile::tempdir().expect("tmp");
        for controller in ["cpu,cpuacct", "memory"] {
            let dir = tmp.path().join(controller);
            fs::create_dir_all(&dir).expect("mkdir");
            fs::write(dir.join("tasks"), "1\n").expect("write");
        }
        let reader = CgroupfsReader::new(tmp.path().to_owned(), "/proc".into(), false);
        let err = reader.check().expect_err("v1");
        assert!(matches!(err, SourceError::CgroupV1 { .. }), "{err}");
        assert!(err.to_string().contains("cgroup v1"), "{err}");
    }

    #[test]
    fn pids_of_another_pid_namespace_count_but_are_not_the_main_process() {
        let t = tree();
        let pod = t
            .root
            .join("kubepods/burstable/pod6f1c2a9e-3b7d-4c1e-9a2b-0d5e8f7a6b4c")
            .join(CID);
        fs::write(pod.join("cgroup.procs"), "0\n0\n43\n").expect("write");
        let s = CgroupfsReader::new(t.root.clone(), t.proc_root.clone(), true)
            .read()
            .expect("reads");
        assert_eq!(s.cgroups[0].tasks.processes, 3);
        assert_eq!(s.cgroups[0].main_process.as_ref().map(|m| m.pid), Some(43));
    }

    #[test]
    fn stat_start_time_survives_odd_command_names() {
        let stat = "9 (a) b) c) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0";
        assert_eq!(start_time(stat), Some(777));
        assert_eq!(start_time("garbage"), None);
    }
}
