#!/usr/bin/env python3
"""Agent overhead: CPU and resident memory of two agents side by side at a 1 s interval on a synthetic
node of N containers, one reading a fake module document (`--source module --proc-root`), one the
cgroupfs fallback on an equivalent fake cgroupfs tree and procfs. A ticker rewrites both every second
(growing counters) so each agent computes real rates; both ship to one real log service on loopback.

usage: agent-bench.py AGENT LOGSVC [--containers 100] [--seconds 60] [--warmup 5]
Prints a markdown table of medians (per-second CPU %% of one core, RSS MiB)."""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("agent")
p.add_argument("logsvc")
p.add_argument("--containers", type=int, default=100)
p.add_argument("--seconds", type=int, default=60)
p.add_argument("--warmup", type=int, default=5)
args = p.parse_args()

TICK = os.sysconf("SC_CLK_TCK")
work = tempfile.mkdtemp(prefix="agent-bench-")
cg_root = os.path.join(work, "cgroup")
proc_fallback = os.path.join(work, "proc-fallback")
proc_module = os.path.join(work, "proc-module")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def container(i):
    uid = f"00000000-0000-4000-8000-{i:012x}"
    cid = (f"{i:08x}" * 8)[:64]
    pod = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid.replace('-', '_')}.slice"
    return pod, f"{pod}/cri-containerd-{cid}.scope", 1000 + i


containers = [container(i) for i in range(args.containers)]
parents = ["/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice"]

for proc in (proc_fallback, proc_module):
    write(f"{proc}/meminfo", "MemTotal: 24000000 kB\nMemFree: 12000000 kB\nMemAvailable: 16000000 kB\n")
    write(f"{proc}/loadavg", "0.50 0.40 0.30 1/200 1234\n")
write(f"{cg_root}/cgroup.controllers", "cpu io memory pids\n")
for path in parents:
    write(f"{cg_root}{path}/cgroup.procs", "")
for pod, ctr, pid in containers:
    write(f"{cg_root}{pod}/cgroup.procs", "")
    write(f"{cg_root}{ctr}/cgroup.procs", f"{pid}\n")
    write(f"{cg_root}{ctr}/cgroup.threads", f"{pid}\n")
    write(f"{proc_fallback}/{pid}/stat", f"{pid} (stress) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {pid} 0 0\n")
    write(f"{proc_fallback}/{pid}/comm", "stressmix-stress\n")
    write(f"{proc_fallback}/{pid}/cmdline", "stressmix-stress\0cpu\0--duration\0000\0")


def tick(n):
    """Advance every counter as if each container used 10 % of a core, 1 MiB/s of disk, 100 ops/s."""
    now_boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    now_wall = time.time_ns()
    usage_us = n * 100_000
    io = f"8:0 rbytes={n << 20} wbytes={n << 19} rios={n * 50} wios={n * 50} dbytes=0 dios=0\n"
    cpu_ticks = n * 100
    stat = f"cpu {cpu_ticks} 0 {cpu_ticks} {cpu_ticks * 4} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\n"
    for proc in (proc_fallback, proc_module):
        write(f"{proc}/stat", stat)
    doc_cgroups = []
    level_of = lambda path: path.count("/")
    for path in parents:
        doc_cgroups.append(cgroup_doc(path, level_of(path), 0, 0, None))
    for pod, ctr, pid in containers:
        # At a 10 % quota of a 100 ms period, throttled in 9 of 10 periods; stalled 5 % of the time.
        write(f"{cg_root}{ctr}/cpu.stat",
              f"usage_usec {usage_us}\nuser_usec {usage_us // 2}\nsystem_usec {usage_us // 2}\n"
              f"nr_periods {n * 10}\nnr_throttled {n * 9}\nthrottled_usec {n * 900_000}\n")
        for resource in ("cpu", "memory", "io"):
            write(f"{cg_root}{ctr}/{resource}.pressure",
                  f"some avg10=5.00 avg60=5.00 avg300=5.00 total={n * 50_000}\n"
                  f"full avg10=2.00 avg60=2.00 avg300=2.00 total={n * 20_000}\n")
        write(f"{cg_root}{ctr}/memory.events", f"low 0\nhigh 0\nmax {n}\noom 0\noom_kill 0\n")
        write(f"{cg_root}{ctr}/io.stat", io)
        write(f"{cg_root}{ctr}/memory.current", f"{(50 << 20) + n}\n")
        write(f"{cg_root}{ctr}/memory.peak", f"{(60 << 20)}\n")
        write(f"{cg_root}{ctr}/memory.max", f"{128 << 20}\n")
        doc_cgroups.append(cgroup_doc(pod, level_of(pod), 0, 0, None))
        doc_cgroups.append(cgroup_doc(ctr, level_of(ctr), usage_us * 1000, n, pid))
    doc = {
        "schema_version": 2, "module_version": "bench", "kernel_release": os.uname().release,
        "timestamp": {"wall_ns": now_wall, "boot_ns": now_boot},
        "system": {
            "memory": {"total_bytes": 24000000 * 1024, "free_bytes": 12000000 * 1024,
                       "available_bytes": 16000000 * 1024, "used_bytes": 8000000 * 1024},
            "cpu": {"online": 2, "possible": 2, "time_ns": {
                "user": cpu_ticks * 10_000_000, "nice": 0, "system": cpu_ticks * 10_000_000,
                "idle": cpu_ticks * 40_000_000, "iowait": 0, "irq": 0, "softirq": 0, "steal": 0,
                "guest": 0, "guest_nice": 0}},
            "load_average": {"one": 0.5, "five": 0.4, "fifteen": 0.3}},
        "filter": "all", "cgroups": doc_cgroups, "truncated": False,
    }
    tmp = f"{proc_module}/stressmix.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, f"{proc_module}/stressmix")


ids = {}


def cgroup_doc(path, level, usage_ns, n, pid):
    cid = ids.setdefault(path, 5000 + len(ids))
    return {
        "id": cid, "level": level, "path": path,
        "memory": {"current_bytes": (50 << 20) + n, "peak_bytes": 60 << 20, "limit_bytes": 128 << 20},
        "cpu": {"usage_ns": usage_ns, "user_ns": usage_ns // 2, "system_ns": usage_ns // 2},
        "tasks": {"processes": 1 if pid else 0, "threads": 1 if pid else 0},
        "io": {"read_bytes": n << 20, "write_bytes": n << 19, "cancelled_write_bytes": 0,
               "read_chars": n << 20, "write_chars": n << 19, "read_syscalls": n * 50, "write_syscalls": n * 50},
        "main_process": {"pid": pid, "name": "stressmix-stress", "cmdline": ["stressmix-stress", "cpu"]} if pid else None,
        "pressure": {r: {"some_ns": n * 50_000_000, "full_ns": n * 20_000_000} for r in ("cpu", "memory", "io")},
        "memory_events": {"low": 0, "high": 0, "max": n, "oom": 0, "oom_kill": 0},
    }


def wait_http(url, limit=30):
    end = time.time() + limit
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def cpu_ticks_of(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


tick(1)
logsvc_port = free_port()
devnull = subprocess.DEVNULL
logsvc = subprocess.Popen([args.logsvc, "--listen", f"127.0.0.1:{logsvc_port}", "--db", ":memory:"],
                          stdout=devnull, stderr=devnull, env={**os.environ, "RUST_LOG": "warn"})
wait_http(f"http://127.0.0.1:{logsvc_port}/healthz")
common = ["--no-kubernetes", "--interval", "1s", "--node-name", "bench", "--log-format", "json",
          "--logsvc-url", f"http://127.0.0.1:{logsvc_port}"]
agents = {}
metrics_ports = {}
for name, extra in [
    # The module agent reads cpu.stat's throttling lines from the same tree (no module reaches them).
    ("module", ["--source", "module", "--proc-root", proc_module, "--cgroup-root", cg_root]),
    ("cgroupfs", ["--source", "cgroupfs", "--cgroup-root", cg_root, "--proc-root", proc_fallback]),
]:
    port = free_port()
    metrics_ports[name] = port
    agents[name] = subprocess.Popen([args.agent, *common, *extra, "--metrics-addr", f"127.0.0.1:{port}"],
                                    stdout=devnull, stderr=devnull, env={**os.environ, "RUST_LOG": "warn"})
for name, port in metrics_ports.items():
    wait_http(f"http://127.0.0.1:{port}/healthz", 30)

samples = {name: {"cpu": [], "rss": []} for name in agents}
n = 2
start = time.monotonic()
last = {name: (time.monotonic(), cpu_ticks_of(a.pid)) for name, a in agents.items()}
try:
    while time.monotonic() - start < args.seconds + args.warmup:
        tick(n)
        n += 1
        time.sleep(max(0.0, start + (n - 1) - time.monotonic()))
        for name, a in agents.items():
            if a.poll() is not None:
                raise SystemExit(f"{name} agent exited with {a.returncode}")
            t, c = time.monotonic(), cpu_ticks_of(a.pid)
            t0, c0 = last[name]
            last[name] = (t, c)
            if t - start >= args.warmup:
                samples[name].setdefault("first", (t0, c0))
                samples[name]["last"] = (t, c)
                samples[name]["cpu"].append((c - c0) / TICK / (t - t0) * 100.0)
                samples[name]["rss"].append(rss_kib(a.pid) / 1024.0)
    results = {}
    for name, port in metrics_ports.items():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        val = lambda key: next((float(l.split()[-1]) for l in text.splitlines() if l.startswith(key + " ")), 0.0)
        results[name] = {
            "readings": val("stressmix_agent_readings_total"),
            "sent": val("stressmix_agent_batches_sent_total"),
            "coll_sum": val("stressmix_agent_collection_seconds_sum"),
            "coll_count": val("stressmix_agent_collection_seconds_count"),
        }
finally:
    for a in [*agents.values(), logsvc]:
        a.send_signal(signal.SIGTERM)
    for a in [*agents.values(), logsvc]:
        try:
            a.wait(timeout=20)
        except subprocess.TimeoutExpired:
            a.kill()
    shutil.rmtree(work, ignore_errors=True)

print(f"\n{args.containers} containers ({2 + 2 * args.containers} cgroups), 1 s interval, "
      f"{len(samples['module']['cpu'])} one-second samples after {args.warmup} s warm-up; medians.\n")
print("| source | CPU % of one core, whole window | CPU % per 1 s (median) | CPU % per 1 s (max) | RSS MiB (median) | RSS MiB (max) | collection ms (mean) | batches sent |")
print("|---|---|---|---|---|---|---|---|")
ok = True
for name in ("module", "cgroupfs"):
    s, r = samples[name], results[name]
    cpu_med, rss_med = statistics.median(s["cpu"]), statistics.median(s["rss"])
    coll = r["coll_sum"] / r["coll_count"] * 1000 if r["coll_count"] else 0.0
    (t0, c0), (t1, c1) = s["first"], s["last"]
    # Per-second samples are quantised to clock ticks (10 ms = 1 %); the whole window is exact.
    window = (c1 - c0) / TICK / (t1 - t0) * 100.0
    print(f"| {name} | {window:.2f} | {cpu_med:.2f} | {max(s['cpu']):.2f} | {rss_med:.1f} | {max(s['rss']):.1f} | {coll:.2f} | {int(r['sent'])} |")
    if name == "module":
        ok = window <= 1.0 and rss_med <= 20.0
        if r["sent"] < args.seconds / 2:
            ok = False
print(f"\ntargets with the module: <= 1 % of one core and <= 20 MiB resident: {'MET' if ok else 'NOT MET'}")
