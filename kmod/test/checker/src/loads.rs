//! The processes the tests put into cgroups. Each is a subcommand of this binary.

use std::hint::black_box;
use std::time::Duration;

use anyhow::{Context, Result};

/// Burns CPU until killed.
pub fn spin() -> ! {
    let mut x: u64 = 1;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Allocates `bytes`, writes every page so it is resident, then waits to be killed.
pub fn hold_memory(bytes: usize) -> Result<()> {
    let mut v = vec![0u8; bytes];
    for i in (0..bytes).step_by(4096) {
        v[i] = 1;
    }
    black_box(&v);
    pause(None)
}

/// Optionally renames itself (`comm`, raw bytes), then sleeps until killed.
pub fn pause(comm: Option<&[u8]>) -> Result<()> {
    if let Some(name) = comm {
        std::fs::write("/proc/self/comm", name).context("write /proc/self/comm")?;
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Decodes lowercase or uppercase hex.
pub fn unhex(s: &str) -> Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .with_context(|| format!("bad hex {s:?}"))
        })
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
