//! Shared by the agent's process-level tests: a synthetic cgroupfs tree, the real log service
//! binary on a loopback port, the agent binary, and reading back what the service stored.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The log service binary: `STRESSMIX_LOGSVC_BIN`, else next to the agent binary in the target dir
/// (`make test-agent` builds it with `cargo build -p stressmix-logsvc`). `None` = not built.
pub fn logsvc_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("STRESSMIX_LOGSVC_BIN") {
        return Some(PathBuf::from(path));
    }
    let beside =
        Path::new(env!("CARGO_BIN_EXE_stressmix-agent")).with_file_name("stressmix-logsvc");
    beside.exists().then_some(beside)
}

/// The log service binary, or the reason this test cannot run: a failure under CI, a printed skip
/// otherwise.
pub fn require_logsvc() -> Option<PathBuf> {
    match logsvc_binary() {
        Some(path) => Some(path),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "stressmix-logsvc binary not found (CI=true): run `cargo build -p stressmix-logsvc` first or set STRESSMIX_LOGSVC_BIN"
            )
        }
        None => {
            eprintln!(
                "SKIPPED: stressmix-logsvc binary not built (cargo build -p stressmix-logsvc)"
            );
            None
        }
    }
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("addr").port()
}

/// A cgroup v2 tree with a few busy-looking cgroups and the procfs files the fallback reads.
pub struct FakeNode {
    pub dir: tempfile::TempDir,
}

impl FakeNode {
    pub fn new(cgroups: usize) -> FakeNode {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("cgroup");
        let proc_root = dir.path().join("proc");
        std::fs::create_dir_all(&proc_root).expect("mkdir");
        write(&root.join("cgroup.controllers"), "cpu io memory pids\n");
        write(
            &proc_root.join("meminfo"),
            "MemTotal: 4000000 kB\nMemFree: 2000000 kB\nMemAvailable: 3000000 kB\n",
        );
        write(
            &proc_root.join("stat"),
            "cpu 100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n",
        );
        write(&proc_root.join("loadavg"), "0.10 0.10 0.10 1/1 1\n");
        for i in 0..cgroups {
            let cg = root.join(format!(
                "kubepods/besteffort/pod00000000-0000-0000-0000-{i:012}/{}",
                format!("{i:x}").repeat(64).get(..64).unwrap_or_default()
            ));
            write(&cg.join("cgroup.procs"), "");
            write(&cg.join("cpu.stat"), "usage_usec 1000\n");
            write(&cg.join("memory.current"), "1048576\n");
            write(&cg.join("memory.max"), "max\n");
            write(&cg.join("io.stat"), "");
        }
        FakeNode { dir }
    }

    pub fn cgroup_root(&self) -> PathBuf {
        self.dir.path().join("cgroup")
    }

    pub fn proc_root(&self) -> PathBuf {
        self.dir.path().join("proc")
    }
}

pub fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// A child process whose output lines are collected (and echoed to the test's stderr).
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var("STRESSMIX_TEST_ECHO").is_ok() {
                        eprintln!("[{name}] {line}");
                    }
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        Proc { child, lines, name }
    }

    /// SIGTERM, then wait (at most `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("{} did not exit within {limit:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// JSON log lines whose `fields.message` is `message`.
    pub fn json_logs(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == message)
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_logsvc(binary: &Path, port: u16, db: &Path) -> Proc {
    let mut cmd = Command::new(binary);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "warn");
    let proc = Proc::spawn("logsvc", cmd);
    wait_http(
        &format!("http://127.0.0.1:{port}/healthz"),
        Duration::from_secs(30),
    );
    proc
}

/// Wait until `url` answers 200.
pub fn wait_http(url: &str, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if get(url).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not answer within {limit:?}");
}

/// A blocking HTTP GET on loopback; `None` unless the status is 200.
pub fn get(url: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if response.status() != reqwest::StatusCode::OK {
            return None;
        }
        response.text().await.ok()
    })
}

/// One sample of a Prometheus text exposition, e.g. `stressmix_agent_buffered_batches`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Sequence numbers stored per boot id, with how often each was stored.
pub fn stored_sequences(db: &Path) -> BTreeMap<String, BTreeMap<u64, u32>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the log service's database");
    let mut stmt = conn
        .prepare("SELECT boots.boot_id, batches.sequence FROM batches JOIN boots ON boots.id = batches.boot")
        .expect("query");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .expect("rows");
    let mut out: BTreeMap<String, BTreeMap<u64, u32>> = BTreeMap::new();
    for row in rows {
        let (boot, seq) = row.expect("row");
        *out.entry(boot)
            .or_default()
            .entry(u64::try_from(seq).expect("seq"))
            .or_default() += 1;
    }
    out
}
