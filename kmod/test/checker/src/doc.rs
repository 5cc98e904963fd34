//! Reading and checking one document of the module with the `api` types.

use anyhow::{Context, Result, bail, ensure};
use stressmix_api::kmod::{CgroupFilter, Snapshot};

pub fn read(path: &str) -> Result<(Vec<u8>, Snapshot)> {
    let raw = std::fs::read(path).with_context(|| format!("read {path}"))?;
    let snap = parse(&raw)?;
    Ok((raw, snap))
}

pub fn parse(raw: &[u8]) -> Result<Snapshot> {
    ensure!(raw.is_ascii(), "document is not pure ASCII");
    let snap: Snapshot = serde_json::from_slice(raw).context("document does not parse")?;
    snap.check_schema()?;
    invariants(&snap)?;
    Ok(snap)
}

/// What holds for every document, whatever the machine does meanwhile.
pub fn invariants(s: &Snapshot) -> Result<()> {
    ensure!(
        s.timestamp.wall_ns > 1_600_000_000_000_000_000,
        "wall clock {}",
        s.timestamp.wall_ns
    );
    let m = s.system.memory;
    ensure!(
        m.total_bytes > 0 && m.free_bytes <= m.total_bytes,
        "memory {m:?}"
    );
    ensure!(
        m.used_bytes == m.total_bytes - m.available_bytes,
        "used {m:?}"
    );
    ensure!(s.system.cpu.online >= 1 && s.system.cpu.online <= s.system.cpu.possible);
    ensure!(s.system.cpu.time_ns.total() > 0, "no cpu time");
    let mut ids = std::collections::HashSet::new();
    for c in &s.cgroups {
        let p = c.path.to_bytes()?;
        ensure!(p.first() == Some(&b'/'), "path {:?}", c.path);
        let depth = p.iter().filter(|&&b| b == b'/').count() as u32;
        ensure!(
            depth == c.level || s.truncated,
            "level {} of {}",
            c.level,
            c.path
        );
        ensure!(c.tasks.processes <= c.tasks.threads, "tasks of {}", c.path);
        ensure!(
            c.main_process.is_some() == (c.tasks.processes > 0),
            "main process of {}",
            c.path
        );
        ensure!(ids.insert(c.id), "id {} twice", c.id);
        if s.filter == CgroupFilter::Containers {
            ensure!(is_container(&p), "not a container: {}", c.path);
        }
    }
    Ok(())
}

/// Same rule as the module's `containers_only` filter.
pub fn is_container(path: &[u8]) -> bool {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    if name.len() == 64 {
        return hex(name);
    }
    match name.strip_suffix(b".scope") {
        Some(n) if n.len() > 65 => n[n.len() - 65] == b'-' && hex(&n[n.len() - 64..]),
        _ => false,
    }
}

pub fn check_doc_file(
    path: &str,
    filter: &str,
    min: usize,
    truncated_at: Option<usize>,
) -> Result<()> {
    let (raw, s) = read(path)?;
    let want = match filter {
        "all" => CgroupFilter::All,
        "containers" => CgroupFilter::Containers,
        f => bail!("--filter {f:?}"),
    };
    ensure!(s.filter == want, "filter is {:?}, want {want:?}", s.filter);
    ensure!(
        s.cgroups.len() >= min,
        "{} cgroups, want at least {min}",
        s.cgroups.len()
    );
    match truncated_at {
        Some(n) => ensure!(
            s.truncated && s.cgroups.len() == n,
            "want truncated at {n}: truncated {}, {} cgroups",
            s.truncated,
            s.cgroups.len()
        ),
        None => ensure!(!s.truncated, "truncated at {} cgroups", s.cgroups.len()),
    }
    println!(
        "{path}: {} bytes, {} cgroups, filter {:?}, truncated {}",
        raw.len(),
        s.cgroups.len(),
        s.filter,
        s.truncated
    );
    Ok(())
}
