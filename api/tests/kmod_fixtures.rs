//! Parses every sample document of the kernel module under `tests/fixtures/kmod/` with the api
//! types. The `*-real-*.json` files were written by the real module in the qemu harness
//! (`kmod/test/run.sh`); `handwritten-v1.json` exercises the escaping rules on purpose and stays as the
//! schema 1 compatibility fixture; `handwritten-v2.json` has the schema 2 fields, `null` ones included.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::path::{Path, PathBuf};

use stressmix_api::kmod::{
    CgroupFilter, CpuThrottling, KString, MemoryEvents, PressureTotals, SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS, Snapshot,
};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kmod");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Snapshot {
    let text = std::fs::read(path).unwrap();
    assert!(
        text.is_ascii(),
        "{}: the module writes pure ASCII",
        path.display()
    );
    let s: Snapshot =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    s.check_schema().unwrap();
    s
}

#[test]
fn every_fixture_parses_and_is_consistent() {
    let files = fixtures();
    assert!(!files.is_empty());
    for path in &files {
        let s = load(path);
        assert!(
            SUPPORTED_SCHEMA_VERSIONS.contains(&s.schema_version),
            "{}",
            path.display()
        );
        assert!(
            s.timestamp.wall_ns > 1_600_000_000_000_000_000,
            "{}",
            path.display()
        );
        assert!(s.timestamp.boot_ns > 0);
        let m = s.system.memory;
        assert!(m.total_bytes > 0 && m.free_bytes <= m.total_bytes);
        assert!(m.available_bytes <= m.total_bytes);
        assert_eq!(m.used_bytes, m.total_bytes - m.available_bytes);
        assert!(s.system.cpu.online >= 1 && s.system.cpu.online <= s.system.cpu.possible);
        assert!(s.system.cpu.time_ns.total() > 0);
        assert!(!s.cgroups.is_empty(), "{}", path.display());
        for c in &s.cgroups {
            let p = c.path.to_bytes().unwrap();
            assert!(p.starts_with(b"/"), "{}: path {:?}", path.display(), c.path);
            let depth = p.iter().filter(|&&b| b == b'/').count();
            assert_eq!(
                depth as u32,
                c.level,
                "{}: level of {}",
                path.display(),
                c.path
            );
            if let Some(mem) = c.memory {
                assert!(mem.current_bytes <= mem.peak_bytes || mem.peak_bytes == 0);
            }
            if s.schema_version >= 2 {
                assert_eq!(
                    c.memory_events.is_some(),
                    c.memory.is_some(),
                    "{}: memory_events exactly when memory, {}",
                    path.display(),
                    c.path
                );
            } else {
                assert!(c.pressure.is_none() && c.memory_events.is_none());
            }
            assert!(
                c.cpu_throttling.is_none(),
                "{}: the module never writes cpu_throttling",
                path.display()
            );
            if let Some(p) = c.pressure {
                for r in [p.cpu, p.memory, p.io] {
                    assert!(r.full_ns <= r.some_ns, "{}: {r:?}", c.path);
                }
            }
            if let Some(e) = c.memory_events {
                assert!(e.oom <= e.max, "an OOM follows a charge over max: {e:?}");
            }
            assert!(c.tasks.processes <= c.tasks.threads);
            assert_eq!(
                c.main_process.is_some(),
                c.tasks.processes > 0,
                "{}",
                c.path
            );
        }
        // Pre-order: every parent listed before its children.
        for (i, c) in s.cgroups.iter().enumerate() {
            let p = c.path.to_bytes().unwrap();
            if c.level < 2 || s.filter == CgroupFilter::Containers {
                continue;
            }
            let cut = p.iter().rposition(|&b| b == b'/').unwrap();
            let parent = KString::from_bytes(&p[..cut]);
            assert!(
                s.cgroups[..i].iter().any(|q| q.path == parent),
                "{}: parent of {} not listed before it",
                path.display(),
                c.path
            );
        }
    }
}

#[test]
fn handwritten_fixture_decodes_escapes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kmod");
    let s = load(&dir.join("handwritten-v1.json"));
    let c = &s.cgroups[3];
    assert_eq!(c.memory.unwrap().limit_bytes, Some(134_217_728));
    assert_eq!(s.cgroups[0].memory.unwrap().limit_bytes, None);
    assert!(s.cgroups[4].memory.is_none());
    let main = c.main_process.as_ref().unwrap();
    let args = main.cmdline.as_ref().unwrap();
    assert_eq!(
        args[5].to_bytes().unwrap(),
        b"say \"hi\"\\\ttab\nnewline \xc3\xa9 \xff".to_vec()
    );
    assert_eq!(
        args[5].to_string_lossy(),
        "say \"hi\"\\\ttab\nnewline é \u{fffd}"
    );
    assert_eq!(s.cgroups[4].main_process.as_ref().unwrap().cmdline, None);
    // Serializing back gives the same document.
    let again: Snapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(again, s);
}

#[test]
fn handwritten_v2_fixture_reads_the_schema_2_fields() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kmod");
    let s = load(&dir.join("handwritten-v2.json"));
    assert_eq!(s.schema_version, 2);
    let c = &s.cgroups[1];
    let p = c.pressure.unwrap();
    assert_eq!(
        p.cpu,
        PressureTotals {
            some_ns: 3_600_000_000,
            full_ns: 3_500_000_000
        }
    );
    assert_eq!(p.memory.full_ns, 11_000_000);
    assert_eq!(p.io.some_ns, 0);
    assert_eq!(
        c.memory_events,
        Some(MemoryEvents {
            low: 0,
            high: 0,
            max: 57,
            oom: 2,
            oom_kill: 2
        })
    );
    // PSI off for a cgroup and no memory controller: both null.
    assert!(s.cgroups[2].pressure.is_none() && s.cgroups[2].memory_events.is_none());
    // Round trip; cpu_throttling (filled by the agent from cpu.stat) is written only when set.
    let text = serde_json::to_string(&s).unwrap();
    assert!(!text.contains("cpu_throttling"));
    assert_eq!(serde_json::from_str::<Snapshot>(&text).unwrap(), s);
    let mut with = s.clone();
    with.cgroups[1].cpu_throttling = Some(CpuThrottling {
        nr_periods: 40,
        nr_throttled: 38,
        throttled_ns: 3_400_000_000,
    });
    let again: Snapshot = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
    assert_eq!(again, with);
}

#[test]
fn real_fixtures_come_from_both_kernels_with_kind_shaped_trees() {
    let real: Vec<PathBuf> = fixtures()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("-real-"))
        .collect();
    for release in ["6.1.", "6.12."] {
        let of_kernel: Vec<Snapshot> = real
            .iter()
            .map(|p| load(p))
            .filter(|s| s.kernel_release.as_latin1().starts_with(release))
            .collect();
        assert!(
            of_kernel.iter().any(|s| s.filter == CgroupFilter::All)
                && of_kernel
                    .iter()
                    .any(|s| s.filter == CgroupFilter::Containers),
            "no full and containers-only documents from a {release} kernel"
        );
        for s in &of_kernel {
            let paths: Vec<String> = s.cgroups.iter().map(|c| c.path.to_string()).collect();
            assert!(
                paths.iter().any(|p| p.contains("/cri-containerd-")),
                "{paths:?}"
            );
            assert!(
                paths
                    .iter()
                    .any(|p| p.starts_with("/kubepods/burstable/pod"))
            );
            assert!(s.cgroups.iter().any(|c| c.cpu.usage_ns > 1_000_000_000));
            assert!(s.cgroups.iter().any(|c| c.io.write_bytes >= 32 << 20));
            assert!(
                s.cgroups
                    .iter()
                    .any(|c| c.memory.is_some_and(|m| m.limit_bytes == Some(128 << 20)))
            );
            // Schema 2, written after the guest's OOM kill and 10 % CPU hog (PSI is on there).
            assert_eq!(
                s.schema_version, SCHEMA_VERSION,
                "{release}: refresh with make kmod-fixtures"
            );
            for c in &s.cgroups {
                assert!(c.pressure.is_some(), "{}: no pressure", c.path);
                if c.memory.is_some() {
                    assert!(c.memory_events.is_some(), "{}: no memory_events", c.path);
                }
            }
            assert!(
                s.cgroups
                    .iter()
                    .any(|c| c.memory_events.is_some_and(|e| e.oom_kill >= 1)),
                "{release}: no OOM kill"
            );
            assert!(
                s.cgroups
                    .iter()
                    .any(|c| c.pressure.is_some_and(|p| p.cpu.full_ns > 0)),
                "{release}: no cpu pressure"
            );
            assert!(
                s.cgroups
                    .iter()
                    .any(|c| c.pressure.is_some_and(|p| p.memory.some_ns > 0)),
                "{release}: no memory pressure"
            );
        }
    }
}

/// Written by the real module while the guest's escaping check ran: a cgroup, a process name and
/// arguments full of bytes that need escaping.
#[test]
fn real_escape_fixtures_round_trip_bytes() {
    let escapes: Vec<PathBuf> = fixtures()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-real-escapes.json"))
        .collect();
    assert_eq!(escapes.len(), 2, "one per kernel: {escapes:?}");
    let name: &[u8] = b"/stressmix-escape/we\"ird\\name\ttab \xff\xfe caf\xc3\xa9 {}";
    for path in &escapes {
        let s = load(path);
        let c = s
            .cgroups
            .iter()
            .find(|c| c.path.to_bytes().unwrap() == name)
            .unwrap_or_else(|| panic!("{}: escaped cgroup missing", path.display()));
        let main = c.main_process.as_ref().unwrap();
        assert_eq!(main.name.to_bytes().unwrap(), b"q\"b\\t\tn\n\xff\xc3\xa9");
        let args: Vec<Vec<u8>> = main
            .cmdline
            .as_ref()
            .unwrap()
            .iter()
            .skip(4)
            .map(|a| a.to_bytes().unwrap())
            .collect();
        let want: Vec<&[u8]> = vec![
            b"quote\"d",
            b"back\\slash",
            b"tab\there",
            b"new\nline",
            b"",
            b"bad\xff\xfeutf8",
            b"caf\xc3\xa9",
            b"ctl\x01\x1f\x7f",
        ];
        assert_eq!(args, want);
        let cmdline = main.cmdline.as_ref().unwrap();
        assert_eq!(cmdline[10].to_string_lossy(), "café");
        assert_eq!(cmdline[9].to_string_lossy(), "bad\u{fffd}\u{fffd}utf8");
    }
}
