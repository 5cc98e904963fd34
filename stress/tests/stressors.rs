//! Runs the built `stressmix-stress` binary and checks what it consumes against the kernel's
//! own accounting of the child: CPU time (wait4 rusage), VmRSS, and /proc/<pid>/io.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_stressmix-stress");
const MIB: u64 = 1 << 20;

/// Serialises the CPU-hungry runs so they do not starve each other on a 2-core machine.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stressmix-stress")
}

#[derive(Debug)]
struct Finished {
    exit_code: Option<i32>,
    stdout: String,
    stderr: String,
    /// /proc/<pid>/io of the child, read after it exited and before it was reaped.
    io: HashMap<String, u64>,
    /// user + system CPU seconds of the child (wait4 rusage).
    cpu_seconds: f64,
}

impl Finished {
    fn summary(&self) -> Value {
        let line = self.stdout.trim_end();
        assert_eq!(
            line.lines().count(),
            1,
            "one summary line expected, got {:?}",
            self.stdout
        );
        serde_json::from_str(line).expect("summary is JSON")
    }

    fn assert_success(&self) -> Value {
        assert_eq!(self.exit_code, Some(0), "stderr: {}", self.stderr);
        self.summary()
    }
}

/// Waits for the child to exit, then reads its /proc/<pid>/io while it is a zombie and reaps
/// it with wait4 to get its exact CPU time.
fn finish(mut child: Child) -> Finished {
    let pid = child.id() as libc::pid_t;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout piped")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");

    // SAFETY: waitid/wait4 on our own child's pid, writing into structs we own.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(rc, 0, "waitid: {}", std::io::Error::last_os_error());
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .expect("read /proc/<pid>/io of the exited child");
    let io = io
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.trim().parse::<u64>().expect("io counter")))
        .collect();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Finished {
        exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout,
        stderr,
        io,
        cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
    }
}

fn run(args: &[&str]) -> Finished {
    finish(spawn(args))
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: sending a signal to our own, not yet reaped, child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("VmRSS line");
    kib * 1024
}

/// A fresh empty directory under cargo's per-target temp dir (on the real disk, unlike tmpfs).
fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("stress-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn assert_empty_and_remove(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).expect("list scratch dir").collect();
    assert!(
        left.is_empty(),
        "files left behind in {}: {left:?}",
        dir.display()
    );
    std::fs::remove_dir(dir).expect("remove scratch dir");
}

fn u64_field(summary: &Value, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("summary field {field} missing: {summary}"))
}

fn f64_field(summary: &Value, field: &str) -> f64 {
    summary[field]
        .as_f64()
        .unwrap_or_else(|| panic!("summary field {field} missing: {summary}"))
}

fn assert_within_10_percent(what: &str, measured: f64, expected: f64) {
    let error = (measured - expected).abs() / expected;
    eprintln!(
        "{what}: measured {measured:.3}, expected {expected:.3} ({:+.1}%)",
        (measured / expected - 1.0) * 100.0
    );
    assert!(
        error <= 0.10,
        "{what}: measured {measured} is not within 10% of {expected}"
    );
}

#[test]
fn cpu_consumes_workers_times_load_times_duration() {
    let _heavy = heavy();
    // A low load per worker, so the claim holds even when other work crowds the machine's cores
    // (each thread then still gets its share from the fair scheduler).
    let (workers, load, duration) = (2.0, 0.15, 2.0);
    let finished = run(&["cpu", "--duration", "2", "--workers", "2", "--load", "15"]);
    let summary = finished.assert_success();
    let expected = workers * load * duration;
    assert_within_10_percent(
        "cpu: child CPU seconds (rusage)",
        finished.cpu_seconds,
        expected,
    );
    assert_within_10_percent(
        "cpu: summary cpu_seconds",
        f64_field(&summary, "cpu_seconds"),
        expected,
    );
    assert_eq!(summary["kind"], "cpu");
    assert_eq!(u64_field(&summary, "workers"), 2);
}

/// In a container the runtime's setup runs in the same process before it execs the stressor (runc
/// init), and that CPU time stays in the process's rusage; the run must not be charged for it.
#[test]
fn cpu_used_before_exec_is_not_charged_to_the_run() {
    let _heavy = heavy();
    let (load, duration) = (0.10, 1.0);
    let burn_then_exec = "i=0; while [ $i -lt 600000 ]; do i=$((i+1)); done; exec \"$0\" \"$@\"";
    let child = Command::new("sh")
        .args(["-c", burn_then_exec, BIN])
        .args(["cpu", "--duration", "1", "--load", "10"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sh, then stressmix-stress");
    let finished = finish(child);
    let summary = finished.assert_success();
    let run_cpu = f64_field(&summary, "cpu_seconds");
    assert!(
        finished.cpu_seconds >= run_cpu + 0.3,
        "the shell burned too little before exec to tell: process {} s, run {run_cpu} s",
        finished.cpu_seconds
    );
    assert_within_10_percent(
        "cpu: summary cpu_seconds after a CPU-heavy start",
        run_cpu,
        load * duration,
    );
}

#[test]
fn duration_is_honoured() {
    let started = Instant::now();
    let finished = run(&["cpu", "--duration", "1", "--load", "5"]);
    let wall = started.elapsed();
    let summary = finished.assert_success();
    assert!(
        wall >= Duration::from_secs(1) && wall < Duration::from_millis(1500),
        "wall {wall:?}"
    );
    let reported = f64_field(&summary, "duration_seconds");
    assert!(
        (1.0..1.1).contains(&reported),
        "duration_seconds {reported}"
    );
    assert_eq!(summary["stopped_by_signal"], false);
}

#[test]
fn memory_keeps_bytes_resident_while_running() {
    let bytes = 128 * MIB;
    let child = spawn(&[
        "memory",
        "--duration",
        "0",
        "--workers",
        "2",
        "--bytes",
        &bytes.to_string(),
    ]);
    let pid = child.id();
    let filled = Instant::now();
    while vm_rss(pid) < bytes {
        assert!(
            filled.elapsed() < Duration::from_secs(5),
            "RSS never reached {bytes}: {}",
            vm_rss(pid)
        );
        thread::sleep(Duration::from_millis(20));
    }
    // Across more than one re-touch period the whole set stays resident.
    for _ in 0..4 {
        assert_within_10_percent("memory: child VmRSS", vm_rss(pid) as f64, bytes as f64);
        thread::sleep(Duration::from_millis(300));
    }
    signal(&child, libc::SIGTERM);
    let summary = finish(child).assert_success();
    assert_eq!(u64_field(&summary, "held_bytes"), bytes);
    assert_within_10_percent(
        "memory: summary resident_bytes",
        u64_field(&summary, "resident_bytes") as f64,
        bytes as f64,
    );
    assert_eq!(summary["stopped_by_signal"], true);
}

#[test]
fn disk_writes_reads_back_and_deletes_what_it_claims() {
    let _heavy = heavy();
    let dir = scratch_dir("disk");
    let bytes = 16 * MIB;
    let finished = run(&[
        "disk",
        "--duration",
        "2",
        "--workers",
        "2",
        "--bytes",
        &bytes.to_string(),
        "--dir",
        dir.to_str().expect("utf-8 path"),
    ]);
    let summary = finished.assert_success();
    let (written, read, rounds) = (
        u64_field(&summary, "bytes_written"),
        u64_field(&summary, "bytes_read"),
        u64_field(&summary, "operations"),
    );
    assert!(
        rounds >= 2,
        "each worker completes at least one round: {summary}"
    );
    assert!(
        written >= rounds * bytes / 2 && read >= rounds * bytes / 2,
        "{summary}"
    );
    assert!(u64_field(&summary, "sync_syscalls") >= rounds, "{summary}");
    assert_within_10_percent(
        "disk: /proc io wchar vs bytes_written",
        finished.io["wchar"] as f64,
        written as f64,
    );
    assert_within_10_percent(
        "disk: /proc io write_bytes (storage) vs bytes_written",
        finished.io["write_bytes"] as f64,
        written as f64,
    );
    assert_within_10_percent(
        "disk: /proc io rchar vs bytes_read",
        finished.io["rchar"] as f64,
        read as f64,
    );
    assert_empty_and_remove(&dir);
}

#[test]
fn io_counts_every_synced_write() {
    let dir = scratch_dir("io");
    let finished = run(&[
        "io",
        "--duration",
        "1",
        "--workers",
        "2",
        "--dir",
        dir.to_str().expect("utf-8 path"),
    ]);
    let summary = finished.assert_success();
    let ops = u64_field(&summary, "operations");
    assert!(ops >= 20, "too few synced writes to compare: {summary}");
    assert_eq!(u64_field(&summary, "write_syscalls"), ops);
    assert_eq!(u64_field(&summary, "sync_syscalls"), ops);
    assert_eq!(u64_field(&summary, "bytes_written"), ops * 4096);
    assert_within_10_percent(
        "io: /proc io syscw vs write_syscalls",
        finished.io["syscw"] as f64,
        ops as f64,
    );
    assert_within_10_percent(
        "io: /proc io wchar vs bytes_written",
        finished.io["wchar"] as f64,
        (ops * 4096) as f64,
    );
    assert_empty_and_remove(&dir);
}

#[test]
fn every_stressor_stops_within_a_second_of_a_signal_and_exits_zero() {
    let _heavy = heavy();
    let io_dir = scratch_dir("signal-io");
    let disk_dir = scratch_dir("signal-disk");
    let (io_path, disk_path) = (
        io_dir.to_str().expect("utf-8"),
        disk_dir.to_str().expect("utf-8"),
    );
    let runs: Vec<(Vec<&str>, libc::c_int)> = vec![
        (
            vec!["cpu", "--duration", "0", "--load", "100"],
            libc::SIGINT,
        ),
        (
            vec!["memory", "--duration", "0", "--bytes", "33554432"],
            libc::SIGTERM,
        ),
        (
            vec!["io", "--duration", "0", "--dir", io_path],
            libc::SIGTERM,
        ),
        (
            vec![
                "disk",
                "--duration",
                "0",
                "--bytes",
                "67108864",
                "--dir",
                disk_path,
            ],
            libc::SIGTERM,
        ),
    ];
    thread::scope(|scope| {
        for (args, sig) in &runs {
            scope.spawn(move || {
                let child = spawn(args);
                thread::sleep(Duration::from_millis(500));
                let sent = Instant::now();
                signal(&child, *sig);
                let finished = finish(child);
                let took = sent.elapsed();
                eprintln!("{}: exited {took:?} after signal {sig}", args[0]);
                let summary = finished.assert_success();
                assert!(
                    took < Duration::from_secs(1),
                    "{} took {took:?} to stop",
                    args[0]
                );
                assert_eq!(summary["stopped_by_signal"], true, "{summary}");
                assert_eq!(summary["kind"], args[0]);
            });
        }
    });
    assert_empty_and_remove(&io_dir);
    assert_empty_and_remove(&disk_dir);
}

#[test]
fn bad_arguments_give_a_clear_error_and_nonzero_exit() {
    let dir = scratch_dir("bad-args");
    let dir_path = dir.to_str().expect("utf-8");
    let cases: &[(&[&str], &str)] = &[
        (&["cpu", "--duration", "5", "--load", "0"], "--load"),
        (&["cpu", "--duration", "5", "--load", "101"], "--load"),
        (&["cpu", "--load", "50"], "--duration"),
        (&["cpu", "--duration", "-1"], "--duration"),
        (&["memory", "--duration", "5", "--bytes", "1Gi"], "--bytes"),
        (&["memory", "--duration", "5"], "--bytes"),
        (&["io", "--duration", "5", "--workers", "0"], "--workers"),
        (&["network", "--duration", "5"], "network"),
        (
            &[
                "disk",
                "--duration",
                "1",
                "--bytes",
                "1",
                "--workers",
                "2",
                "--dir",
                dir_path,
            ],
            "cannot be split across 2 workers",
        ),
        (
            &["io", "--duration", "1", "--dir", "/nonexistent/stressmix"],
            "/nonexistent/stressmix",
        ),
    ];
    for (args, expected) in cases {
        let finished = run(args);
        assert_ne!(finished.exit_code, Some(0), "{args:?} succeeded");
        assert!(finished.exit_code.is_some(), "{args:?} died by a signal");
        assert!(
            finished.stderr.contains(expected),
            "{args:?}: stderr lacks {expected:?}: {}",
            finished.stderr
        );
        assert!(
            finished.stdout.is_empty(),
            "{args:?} printed a summary: {}",
            finished.stdout
        );
    }
    assert_empty_and_remove(&dir);
}

/// The termination message: the summary line as stdout has it, and on a failed run the error.
#[test]
fn the_summary_file_holds_the_summary_or_the_error() {
    let dir = scratch_dir("summary-file");
    let file = dir.join("termination-log");
    let file_arg = file.to_str().expect("utf-8 path");
    let finished = run(&["cpu", "--duration", "1", "--summary-file", file_arg]);
    let summary = finished.assert_success();
    let written = std::fs::read_to_string(&file).expect("summary file written");
    assert_eq!(written, finished.stdout.trim_end());
    let parsed: stressmix_api::run_summary::RunSummary =
        serde_json::from_str(&written).expect("the operator's type reads it");
    assert_eq!(parsed.kind, "cpu");
    assert_eq!(summary["kind"], "cpu");

    let missing = dir.join("no-such-dir");
    let finished = run(&[
        "io",
        "--duration",
        "1",
        "--dir",
        missing.to_str().expect("utf-8 path"),
        "--summary-file",
        file_arg,
    ]);
    assert_eq!(finished.exit_code, Some(1), "stderr: {}", finished.stderr);
    let written = std::fs::read_to_string(&file).expect("error written");
    assert!(
        written.starts_with("error: stressmix-stress io: "),
        "{written}"
    );
    assert!(written.len() <= stressmix_api::run_summary::MAX_TERMINATION_MESSAGE);
    std::fs::remove_file(&file).expect("remove");
    assert_empty_and_remove(&dir);
}
