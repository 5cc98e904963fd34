//! Guest-side checker of the stressmix kernel module, run inside the qemu harness
//! (`kmod/test/run.sh`). It prints one `KMODTEST PASS <name>` or `KMODTEST FAIL <name>: <why>`
//! line per check on the serial console; the host script decides pass or fail from them.
//!
//! Subcommands:
//! - `suite --disk DIR`: builds kind-shaped cgroup trees, runs the loads, checks the document.
//! - `check-doc PATH [--filter all|containers] [--min N] [--truncated-at N]`: parses one document
//!   and checks it (`--truncated-at N`: it must say truncated and list exactly N cgroups).
//! - `bench --counts 10,100,1000 --runs N`: module read vs userspace cgroupfs reader.
//! - `spin`, `hold-memory BYTES`, `pause [--comm-hex HEX] [ARGS...]`: loads the tests start.
//! - `open-without-cap PATH`: drops CAP_SYS_ADMIN, then tries to open PATH.

mod bench;
mod cg;
mod contention;
mod doc;
mod loads;
mod suite;

use anyhow::{Context, Result, bail};

fn main() {
    // args_os: the escaping test passes arguments that are not UTF-8 (and ignores them here).
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Err(e) = run(&args) {
        eprintln!("stressmix-kmod-check: {e:#}");
        std::process::exit(1);
    }
}

fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn run(args: &[String]) -> Result<()> {
    let cmd = args.get(1).map(String::as_str).unwrap_or("");
    let rest = args.get(2..).unwrap_or(&[]);
    match cmd {
        "spin" => loads::spin(),
        "hold-memory" => {
            let bytes = rest.first().context("hold-memory BYTES")?.parse()?;
            loads::hold_memory(bytes)
        }
        "pause" => {
            let comm = opt(rest, "--comm-hex").map(loads::unhex).transpose()?;
            loads::pause(comm.as_deref())
        }
        "open-without-cap" => suite::open_without_cap(rest.first().context("PATH")?),
        "check-doc" => {
            let path = rest.first().context("check-doc PATH")?;
            let filter = opt(rest, "--filter").unwrap_or("all");
            let min: usize = opt(rest, "--min").unwrap_or("1").parse()?;
            let truncated_at = opt(rest, "--truncated-at").map(str::parse).transpose()?;
            doc::check_doc_file(path, filter, min, truncated_at)
        }
        "suite" => suite::run(opt(rest, "--disk").context("suite --disk DIR")?),
        "bench" => {
            let counts: Vec<usize> = opt(rest, "--counts")
                .unwrap_or("10,100,1000")
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            let runs: usize = opt(rest, "--runs").unwrap_or("21").parse()?;
            bench::run(
                &counts,
                runs,
                opt(rest, "--proc").unwrap_or("/proc/stressmix"),
            )
        }
        _ => bail!("unknown subcommand {cmd:?}; see the doc comment of main.rs"),
    }
}
