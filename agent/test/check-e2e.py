#!/usr/bin/env python3
"""check-e2e.py FILES_DIR SERIAL_LOG: assert the readings the guest's log service stored match the
loads the guest ran (agent/test/guest-e2e.sh)."""
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

# Sequence numbers: the log service's idempotency table (boot, sequence) of stored batches.
db = sqlite3.connect(f"file:{files}/readings.db?mode=ro", uri=True)
batches = db.execute("SELECT sequence, source FROM batches ORDER BY sequence").fetchall()
seqs = [s for s, _ in batches]
check(len(seqs) >= 8, f"at least 8 batches stored (got {len(seqs)})")
check(seqs == list(range(len(seqs))), "sequence numbers 0..n-1, each once")
check(all(src == "module" for _, src in batches), "every batch says source=module")


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

agent_log = open(f"{files}/agent.log", encoding="utf-8", errors="replace").read()
check('LoadedByUs' in agent_log, "agent loaded the module itself (finit_module after the vermagic check)")
check('"message":"agent stopped"' in agent_log, "agent stopped cleanly on SIGTERM")

print(f"agent-e2e: {len(passes)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
