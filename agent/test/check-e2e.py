#!/usr/bin/env python3
"""check-e2e.py FILES_DIR SERIAL_LOG: assert what the guest's log service stored (agent/test/guest-e2e.sh):
each phase of the module init chain's batches (source, source_reason), and readings that match the loads.
FILES_DIR holds the guest's files and e2e.sh's expect.json (the build-failure line, both srcversions)."""
import json
import re
import sqlite3
import statistics
import sys

MEM_BYTES = 64 * 1024 * 1024
files, log = sys.argv[1], sys.argv[2]
failures = []
passes = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what)
    (passes if ok else failures).append(what)


serial = open(log, encoding="utf-8", errors="replace").read().replace("\r", "")
m = re.search(r"E2E-GUEST mem_current=(\d+)", serial)
guest_mem = int(m.group(1)) if m else None
check(guest_mem is not None, "guest reported memory.current of the memory cgroup")

expect = json.load(open(f"{files}/expect.json"))

# The init chain: load-module always exits 0 with one line, and its status names the outcome.
loads = dict(re.findall(r"^E2E-LOAD (\w+) (rc=\d+ lines=\d+) ", serial, re.M))
statuses = {k: json.loads(v) for k, v in re.findall(r"^E2E-STATUS (\w+) (\{.*\})$", serial, re.M)}
for phase in ("fallback", "module", "again", "stale"):
    check(loads.get(phase) == "rc=0 lines=1", f"load-module ({phase}) exits 0 with one line ({loads.get(phase)})")
st = statuses.get("fallback", {})
check(st.get("outcome") == "failed" and st.get("cause") == "no-headers"
      and f"no-headers: {st.get('reason')}" == expect["build_failure"],
      f"build failed: status failed/no-headers with kmod-build.sh's line ({st})")
check(statuses.get("module", {}).get("outcome") == "loaded", f"kmod-build.sh's .ko: status loaded ({statuses.get('module')})")
check(statuses.get("again", {}).get("outcome") == "already_loaded", f"same build again: already_loaded ({statuses.get('again')})")
st = statuses.get("stale", {})
check(st.get("cause") == "stale-module" and expect["srcversion_built"] in st.get("reason", "")
      and expect["srcversion_stale"] in st.get("reason", "") and "rmmod stressmix" in st.get("reason", ""),
      f"another build loaded: stale-module naming both srcversions and rmmod ({st})")
m = re.search(r"E2E-GUEST srcversion_loaded=(\w+)", serial)
check(m is not None and m.group(1) == expect["srcversion_built"], "the kernel publishes the loaded build's srcversion")

# The batches the log service stored, per agent run (node name = phase).
db = sqlite3.connect(f"file:{files}/readings.db?mode=ro", uri=True)
stored = {}
for node, seq, src, reason in db.execute(
        "SELECT n.name, b.sequence, b.source, b.source_reason FROM batches b JOIN nodes n ON n.id = b.node_id"
        " ORDER BY n.name, b.sequence"):
    stored.setdefault(node, []).append((seq, src, reason))


def batches_of(node, at_least):
    got = stored.get(node, [])
    check(len(got) >= at_least, f"{node}: at least {at_least} batches stored (got {len(got)})")
    check([s for s, _, _ in got] == list(range(len(got))), f"{node}: sequence numbers 0..n-1, each once")
    return got


got = batches_of("guest-fallback", 3)
want = expect["build_failure"]
check(bool(got) and all(src == "cgroupfs" and reason == want for _, src, reason in got),
      f"guest-fallback: every batch says source=cgroupfs, source_reason={want!r} ({got[:1]})")
got = batches_of("guest-module", 8)
check(bool(got) and all(src == "module" and reason is None for _, src, reason in got),
      "guest-module: every batch says source=module, no source_reason")
got = batches_of("guest-stale", 2)
check(bool(got) and all(src == "module" and (reason or "").startswith("stale-module: ")
                         and expect["srcversion_stale"] in reason for _, src, reason in got),
      f"guest-stale: the old module is read and every batch says stale-module ({got[:1]})")
got = batches_of("guest-own", 2)
check(bool(got) and all(src == "module" for _, src, _ in got), "guest-own: the agent's own loader, source=module")

metrics = serial.splitlines()
check('E2E-METRIC guest-fallback stressmix_agent_source_info{source="cgroupfs",cause="no-headers"} 1' in metrics,
      "guest-fallback: the source_info metric names the cause")
check('E2E-METRIC guest-module stressmix_agent_source_info{source="module",cause="none"} 1' in metrics,
      "guest-module: the source_info metric says module, no cause")

rows = json.load(open(f"{files}/containers.json"))


def samples(path):
    """The log service's rows for one cgroup (system cgroups are named by their path), oldest first."""
    picked = sorted((r for r in rows if r["series"] == path), key=lambda r: r["time"])
    return [(r["cpu_percent"], r["cpu_percent_node"], r["memory_bytes"], r["kind"]) for r in picked]


cpu = samples("/e2e-cpu")
check(len(cpu) >= 5, f"CPU cgroup has readings ({len(cpu)})")
if cpu:
    steady = [r[0] for r in cpu[1:]] or [r[0] for r in cpu]
    median = statistics.median(steady)
    print(f"  /e2e-cpu cpu_percent median {median:.1f} over {len(steady)} readings: {[round(x) for x in steady]}")
    check(80.0 <= median <= 110.0, f"busy loop reads near 100% of one core (median {median:.1f})")
    node_median = statistics.median(r[1] for r in cpu[1:] or cpu)
    check(abs(node_median - median / 2) < 5.0, f"node share is half of it on 2 CPUs ({node_median:.1f})")
    check(all(r[3] == "system" for r in cpu), "no pod: attributed as system")

mem = samples("/e2e-mem")
check(len(mem) >= 5, f"memory cgroup has readings ({len(mem)})")
if mem and guest_mem:
    last = mem[-1][2]
    print(f"  /e2e-mem memory_bytes last {last}, guest memory.current {guest_mem}, load {MEM_BYTES}")
    check(MEM_BYTES <= last <= MEM_BYTES + 24 * 1024 * 1024, "memory reading holds the 64 MiB resident load")
    check(abs(last - guest_mem) <= 0.05 * guest_mem, "memory reading within 5% of the cgroup's memory.current")

log_of = lambda node: open(f"{files}/agent-{node}.log", encoding="utf-8", errors="replace").read()
fallback_log = log_of("guest-fallback")
check('"level":"WARN"' in fallback_log and '"cause":"no-headers"' in fallback_log,
      "guest-fallback: the agent's log warns with the cause")
check('LoadedByUs' in log_of("guest-own"), "guest-own: the agent loaded the module itself (finit_module after the vermagic check)")
for node in ("guest-fallback", "guest-module", "guest-stale", "guest-own"):
    check('"message":"agent stopped"' in log_of(node), f"{node}: agent stopped cleanly on SIGTERM")

print(f"agent-e2e: {len(passes)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
