#!/usr/bin/env python3
"""Checks of `make test-e2e` (hack/e2e/run.sh) against the stack on the lab node.

  check.py pods           every stress pod Running under runc with the operator's args; a pod that
                          reaches durationSeconds exits 0 and its slot gets a new pod; Workload Ready
  check.py module MODE    MODE build: kmod-build's and kmod-load's one line, the agent's batches in the
                          log service's database say source=module; MODE none: source=cgroupfs with
                          a source_reason
  check.py attribution    every running stress pod has readings labelled namespace/pod/container/
                          workload/kind (from the log service's query API)
  check.py metrics        the agent's /metrics, scraped at its prometheus.io address from the node: usage,
                          the 6 pressure series and (cpu pods) throttling of every running stress pod,
                          labelled namespace/pod/container/workload/kind; none dropped
  check.py numbers        cpu, memory, disk and node memory figures against the load
  check.py faults         the agent's pod deleted: a new boot id, no sequence gap, no time gap beyond
                          its absence; the log service's pod deleted: every batch stored before is
                          still there (its volume), the agent's buffer fills the gap
  check.py oom            a memory pod pushed past its limit: its OOM kills reach the log service
                          attributed to its Workload, kind and slot, again for the slot's next pod
                          (each victim replaced), as many as the kubelet's OOMKilled runs; the agent's
                          /metrics counts them per victim with the same labels
  check.py dashboard      every dashboard query (hack/test-deploy/dashboard_contract.py's way of running
                          them) answers one series per stress pod, named after pods in the cluster

Environment (run.sh sets it): KUBECONFIG, STRESSMIX_LAB_LOGSVC_URL, STRESSMIX_E2E_RUN_DIR,
STRESSMIX_E2E_NAMESPACE. Standard library only; exit 1 with a FAIL line on the first failed check.
STRESSMIX_E2E_CPU_PERCENT (default 10) is the expected cpu reading (set it to 20 to see the check fail).
"""

import calendar
import glob
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "hack", "test-deploy"))
import dashboard_contract as dc  # noqa: E402  (its query runner: the way Grafana's Infinity asks)

NS = os.environ.get("STRESSMIX_E2E_NAMESPACE", "stressmix-system")
RUN_DIR = os.environ.get("STRESSMIX_E2E_RUN_DIR", "/tmp")
LOGSVC = os.environ.get("STRESSMIX_LAB_LOGSVC_URL", "http://127.0.0.1:28000")
MiB = 1 << 20
SCRATCH_DIR = "/scratch"  # operator/src/podspec.rs
TERMINATION_LOG = "/dev/termination-log"  # operator/src/podspec.rs


class Failed(Exception):
    pass


class Fatal(Exception):
    """A failure no waiting can mend (wait() does not retry it)."""


def say(msg):
    print(f"[e2e check] {msg}", file=sys.stderr, flush=True)


def ok(msg):
    say(f"ok: {msg}")


# Printed by the guest for a container whose task has ended.
TASK_ENDED = "TASK-ENDED"


def fail(msg):
    raise Failed(msg)


def sh(args, timeout=120):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        fail(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
    return r.stdout


def kubectl_json(*args):
    return json.loads(sh(["kubectl", *args, "-o", "json"]))


def guest(cmd, timeout=120):
    return sh([os.path.join(ROOT, "hack", "lab", "lab"), "run", cmd], timeout=timeout)


def api(path, **params):
    url = LOGSVC + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=15) as resp:
        return json.loads(resp.read())


def wait(what, timeout, probe, every=2):
    """probe() returns a truthy value when done, or raises Failed with the current reason."""
    deadline = time.time() + timeout
    reason = "never probed"
    while time.time() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Failed as e:
            reason = str(e)
        time.sleep(every)
    fail(f"timed out after {timeout} s waiting for {what}: {reason}")


def workload():
    items = kubectl_json("get", "workloads", "-A")["items"]
    if len(items) != 1:
        fail(f"expected one Workload (examples/workload.yaml), found {len(items)}")
    return items[0]


def stress_pods(wl, running_only=True):
    pods = kubectl_json("-n", wl["metadata"]["namespace"], "get", "pods")["items"]
    mine = [p for p in pods if any(o.get("uid") == wl["metadata"]["uid"]
                                   for o in p["metadata"].get("ownerReferences", []))]
    if running_only:
        mine = [p for p in mine if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]
    return mine


def slot(name):
    """A slot's pods alternate between its name and its second name (operator/src/planner.rs)."""
    return name.removesuffix("-b")


def started_ms(p):
    """When the pod's (first) container started running, epoch ms; None when none runs."""
    for cs in p["status"].get("containerStatuses", []):
        at = cs.get("state", {}).get("running", {}).get("startedAt")
        if at:
            return calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ")) * 1000
    return None


def started_before(p, seconds):
    """The pod's container has run for at least `seconds` (so the agent has read it)."""
    at = started_ms(p)
    return at is not None and time.time() * 1000 - at >= seconds * 1000


def pod_kind(p):
    return p["metadata"]["labels"]["stressmix.dev/kind"]


def expected_args(entry, duration):
    """operator/src/podspec.rs stress_args, from the Workload as the cluster holds it."""
    args = [entry["kind"], "--duration", str(max(duration, 0)), "--workers", str(max(entry.get("workers", 1), 1))]
    if entry["kind"] == "cpu":
        args += ["--load", str(min(max(entry.get("load", 100), 1), 100))]
    if entry["kind"] in ("memory", "disk") and entry.get("bytes"):
        args += ["--bytes", str(parse_bytes(entry["bytes"]))]
    if entry["kind"] in ("disk", "io"):
        args += ["--dir", SCRATCH_DIR]
    return args + ["--summary-file", TERMINATION_LOG]


def parse_bytes(text):
    text = str(text)
    for suffix, mult in (("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)):
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * mult
    return int(text)


def limit_bytes(wl):
    return parse_bytes(wl["spec"]["template"]["resources"]["limits"]["memory"])


def limit_cpu_percent(wl):
    cpu = str(wl["spec"]["template"]["resources"]["limits"]["cpu"])
    return float(cpu[:-1]) / 10 if cpu.endswith("m") else float(cpu) * 100


# ---------------------------------------------------------------- 1. real pods


def check_pods():
    wl = workload()
    mix = {e["kind"]: e for e in wl["spec"]["mix"]}
    total = sum(e["replicas"] for e in mix.values())
    duration = wl["spec"]["template"]["durationSeconds"]

    def ready():
        w = workload()
        st = w.get("status", {})
        cond = {c["type"]: c["status"] for c in st.get("conditions", [])}
        pods = stress_pods(w)
        if st.get("desired") != total or st.get("ready") != total or cond.get("Ready") != "True":
            fail(f"status desired={st.get('desired')} ready={st.get('ready')} Ready={cond.get('Ready')}, want {total}")
        for kind, e in mix.items():
            k = st.get("kinds", {}).get(kind, {})
            if k.get("desired") != e["replicas"] or k.get("ready") != e["replicas"]:
                fail(f"status.kinds.{kind} = {k}, want {e['replicas']} desired and ready")
        if len(pods) != total:
            fail(f"{len(pods)} stress pods Running, want {total}")
        return pods

    pods = wait(f"Workload Ready with {total} pods Running", 420, ready)
    ok(f"Workload Ready: desired {total}, ready {total}, per kind "
       + ", ".join(f"{k} {e['replicas']}" for k, e in sorted(mix.items())))

    # Each container: the stress program with the operator's args, run by containerd's runc shim, its
    # process in the guest running exactly that command line. The slots' runs end together when
    # their pods started together: a read that finds every task ended is tried again on the next.
    def processes():
        ids = {}
        for p in stress_pods(wl):
            c = p["spec"]["containers"][0]
            want = expected_args(mix[pod_kind(p)], duration)
            if c.get("args") != want:
                raise Fatal(f"pod {p['metadata']['name']}: args {c.get('args')}, the operator's are {want}")
            if "stressmix-stress" not in " ".join(c.get("command", [])):
                raise Fatal(f"pod {p['metadata']['name']}: command {c.get('command')} is not stressmix-stress")
            cid = next((cs.get("containerID", "") for cs in p["status"].get("containerStatuses", [])), "")
            if not cid.startswith("containerd://"):
                fail(f"pod {p['metadata']['name']}: container id {cid!r} is not containerd's")
            ids[p["metadata"]["name"]] = (cid.removeprefix("containerd://"), want)
        if not ids:
            fail("no stress pod Running")
        script = "; ".join(
            f"echo {name} $(ctr -n k8s.io containers info {cid} | grep -o '\"Name\": \"io.containerd.runc[^\"]*\"' | head -n1)"
            # A task gone since the pod list (its run just ended) has no pid: /proc//cmdline would be
            # the kernel's command line.
            f" $(pid=$(ctr -n k8s.io tasks ls | awk '$1==\"{cid}\"{{print $2}}');"
            f" if [ -n \"$pid\" ]; then tr '\\0' ' ' </proc/$pid/cmdline; else echo {TASK_ENDED}; fi)"
            for name, (cid, _) in ids.items())
        out = guest(script)
        lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.split()}
        ended = [name for name in ids if lines.get(name, "").rstrip().endswith(TASK_ENDED)]
        if len(ended) == len(ids):
            fail(f"every stress pod's task ended before its process was read: {ended}")
        for name, (cid, want) in ids.items():
            if name in ended:
                continue
            line = lines.get(name, "")
            if "io.containerd.runc.v2" not in line:
                raise Fatal(f"pod {name}: containerd's runtime is not runc's shim: {line!r}")
            if not line.rstrip().endswith("stressmix-stress " + " ".join(want)):
                raise Fatal(f"pod {name}: the guest's process runs {line!r}, want stressmix-stress {' '.join(want)}")
        return len(ids) - len(ended), ended

    read, ended = wait("the stress pods' processes in the guest", 90, processes)
    ok(f"{read} stress pods Running under io.containerd.runc.v2, each process "
       f"'stressmix-stress <operator args>'" + (f" ({len(ended)} ended their run meanwhile: {ended})" if ended else ""))

    # A pod reaching durationSeconds exits 0 and its slot (the pod name) gets a new pod.
    first = {slot(p["metadata"]["name"]): p["metadata"]["uid"] for p in pods}
    exited = {}

    def replaced():
        for p in stress_pods(wl, running_only=False):
            name, uid = p["metadata"]["name"], p["metadata"]["uid"]
            for cs in p["status"].get("containerStatuses", []):
                term = cs.get("state", {}).get("terminated")
                if term:
                    if term.get("exitCode") != 0:
                        raise Fatal(f"{name} ({uid}) exited {term.get('exitCode')} "
                                         f"({term.get('reason')}): {term.get('message', '')}")
                    exited.setdefault(uid, (name, pod_kind(p), term.get("reason"), term.get("startedAt"),
                                            term.get("finishedAt"), term.get("message", "")))
            old = first.get(slot(name))
            if old and uid != old and p["status"].get("phase") == "Running" and old in exited:
                return name, old, uid
        fail(f"no replaced pod yet (exits seen: {len(exited)})")

    name, old, new = wait(f"a pod exiting 0 after {duration} s and being replaced", duration + 150, replaced, every=1)
    oldname, oldkind, reason, started, finished, message = exited[old]
    ok(f"pod {oldname} ({old}) exited 0 ({reason}, {started} -> {finished}); its slot {slot(name)} runs "
       f"a new pod {name} ({new})")
    # The run's summary is its termination message (--summary-file /dev/termination-log).
    try:
        summary = json.loads(message)
    except ValueError:
        fail(f"pod {oldname}: termination message is not the run's summary: {message[:200]!r}")
    if summary.get("kind") != oldkind:
        fail(f"pod {oldname}: termination message of another kind: {summary}")
    ok(f"pod {oldname}: termination message is its run's summary ({summary['kind']}, "
       f"{summary['duration_seconds']:.1f} s, {summary['cpu_seconds']:.2f} CPU s)")

    # The operator folded each finished run into status: counted, none failed, and the cpu runs
    # (load 100 under a 100m limit) delivered their limit: CPU seconds per second of run within 10 %.
    def delivered():
        st = workload().get("status", {})
        d = st.get("kinds", {}).get("cpu", {}).get("delivered")
        if not d or st.get("completedRuns", 0) < 2:
            fail(f"status counts {st.get('completedRuns', 0)} completed runs, cpu delivered {d}")
        return st, d
    st, d = wait("the Workload's status counting runs and what the cpu runs delivered", 150, delivered, every=2)
    if st.get("failedRuns", 0):
        fail(f"status counts failed runs: {json.dumps(st.get('kinds'))}")
    if d.get("unit") != "cores" or not d.get("requested"):
        fail(f"cpu runs delivered {d}: want cores against the CPU limit")
    if not 0.9 <= d.get("ratio", 0) <= 1.1:
        fail(f"cpu runs delivered {d['value']:.4f} cores of {d['requested']} (ratio {d.get('ratio')} over "
             f"{d['runs']} runs): not within 10 % of the limit")
    ok(f"status: {st['completedRuns']} runs completed, 0 failed; cpu delivered {d['value']:.4f} cores of "
       f"{d['requested']} (ratio {d['ratio']:.3f} over {d['runs']} runs, within 10 % of the limit)")


# ---------------------------------------------------------------- 2. the module, from the chart


def agent_pod():
    pods = kubectl_json("-n", NS, "get", "pods", "-l", "app.kubernetes.io/component=agent")["items"]
    pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if len(pods) != 1:
        fail(f"expected one agent pod, found {len(pods)}")
    return pods[0]


def copy_database():
    """The log service's SQLite database, copied out of the guest (its local volume) with its WAL."""
    pvc = kubectl_json("-n", NS, "get", "pvc", "-l", "app.kubernetes.io/component=logsvc")["items"]
    if len(pvc) != 1:
        fail(f"expected the log service's one PVC, found {len(pvc)}")
    pv = kubectl_json("get", "pv", pvc[0]["spec"]["volumeName"])
    path = pv["spec"]["local"]["path"]
    tag = f"e2e-db-{time.time_ns()}"
    guest(f"mkdir -p /mnt/labout/{tag} && cp {path}/stressmix.db* /mnt/labout/{tag}/")
    src = os.path.join(os.environ.get("STRESSMIX_CACHE", os.path.expanduser("~/.cache/stressmix")),
                       "lab", "run", "out", tag)
    dst = os.path.join(RUN_DIR, tag)
    os.makedirs(dst, exist_ok=True)
    for f in glob.glob(os.path.join(src, "stressmix.db*")):
        with open(f, "rb") as a, open(os.path.join(dst, os.path.basename(f)), "wb") as b:
            b.write(a.read())
    return sqlite3.connect(os.path.join(dst, "stressmix.db"))


def agent_boot_id(pod):
    """The boot id the running agent announced ('agent started' in its JSON log)."""
    out = sh(["kubectl", "-n", NS, "logs", pod["metadata"]["name"], "-c", "agent"])
    for line in out.splitlines():
        try:
            fields = json.loads(line).get("fields", {})
        except json.JSONDecodeError:
            continue
        if fields.get("message") == "agent started" and fields.get("boot_id"):
            return fields["boot_id"]
    fail(f"agent {pod['metadata']['name']} has not logged 'agent started' with its boot_id")


def agent_started_ms(pod):
    at = started_ms(pod)
    if at is None:
        fail(f"agent {pod['metadata']['name']} is not running")
    return at


def boot_batches(boot_id):
    db = copy_database()
    return db.execute(
        "SELECT b.boot, bo.boot_id, b.sequence, b.source, b.source_reason FROM batches b"
        " JOIN boots bo ON bo.id = b.boot WHERE bo.boot_id = ? ORDER BY b.sequence", (boot_id,)).fetchall()


def check_module(mode):
    pod = agent_pod()
    name = pod["metadata"]["name"]
    boot_id = wait("the agent's boot id in its log", 60, lambda: agent_boot_id(agent_pod()))
    kver = guest("uname -r").strip()
    if mode == "build":
        build = sh(["kubectl", "-n", NS, "logs", name, "-c", "kmod-build"]).strip().splitlines()
        if len(build) < 1 or not build[-1].startswith(f"kmod-build: built stressmix.ko for {kver} with "):
            fail(f"kmod-build said {build[-3:]}, want 'kmod-build: built stressmix.ko for {kver} with ...'")
        ok(f"kmod-build: {build[-1]!r}")
        load = sh(["kubectl", "-n", NS, "logs", name, "-c", "kmod-load"]).strip().splitlines()
        if len(load) != 1 or "loaded" not in load[0] or "fail" in load[0].lower():
            fail(f"kmod-load said {load}, want one line saying it loaded the module")
        ok(f"kmod-load: {load[0]!r}")
        lsmod = guest("grep -c '^stressmix ' /proc/modules || true").strip()
        if lsmod != "1":
            fail("the guest's /proc/modules has no stressmix")
        want_source = "module"
    else:
        inits = [c["name"] for c in pod["spec"].get("initContainers", [])]
        if inits:
            fail(f"module mode none: the agent still has init containers {inits}")
        want_source = "cgroupfs"

    def batches():
        got = boot_batches(boot_id)
        if len(got) < 3:
            fail(f"{len(got)} batches of agent boot {boot_id} so far")
        return got

    got = wait(f"3 batches of agent boot {boot_id} in the log service", 90, batches, every=5)
    sources = {(r[3], r[4]) for r in got}
    if len(sources) != 1:
        fail(f"batches of boot {got[0][1]} disagree on their source: {sources}")
    (source, reason), = sources
    if source != want_source:
        fail(f"batches of boot {got[0][1]} say source={source} ({reason}), want {want_source}")
    if want_source == "cgroupfs" and not reason:
        fail(f"batches of boot {got[0][1]} say source=cgroupfs without a source_reason")
    if want_source == "module" and reason:
        fail(f"batches of boot {got[0][1]} say source=module with source_reason {reason!r}")
    ok(f"{len(got)} batches of agent boot {got[0][1]} (sequences {got[0][2]}..{got[-1][2]}) say "
       f"source={source}" + (f", source_reason={reason!r}" if reason else ""))


# ---------------------------------------------------------------- 3. attribution


def series_of(pod):
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}/{pod['spec']['containers'][0]['name']}"


def check_attribution():
    wl = workload()
    wname = wl["metadata"]["name"]
    agent = agent_pod()
    agent_start = agent["status"].get("startTime")
    agent_ms = agent_started_ms(agent)
    nameless = {}

    mix = {e["kind"]: e["replicas"] for e in wl["spec"]["mix"]}
    total = sum(mix.values())
    verified = {}

    # Pods live 30 s: collect pods until as many as the Workload runs, every kind among them, have
    # been seen with exactly their labels; a pod read with other labels fails at once.
    def labelled():
        now = int(time.time() * 1000)
        pods = [p for p in stress_pods(wl) if started_before(p, 15)]
        # Only this agent's readings (after a reinstall the previous agent's are still in the window).
        rows = api("/api/v1/query/containers", **{"from": max(now - 30_000, agent_ms + 1000), "to": now, "step_ms": 5000})
        seen = {}
        for r in rows:
            if r["container"] == "":
                nameless.setdefault(r["series"], set()).add(r["time"])
                continue
            seen.setdefault(r["pod"], set()).add(
                (r["namespace"], r["pod"], r["container"], r["workload"], r["kind"]))
        for p in pods:
            name = p["metadata"]["name"]
            want = (p["metadata"]["namespace"], name, p["spec"]["containers"][0]["name"], wname, pod_kind(p))
            if name in seen and seen[name] != {want}:
                raise Fatal(f"pod {name}: the log service's labels {seen[name]}, want {want}")
            if name in seen:
                verified[p["metadata"]["uid"]] = (series_of(p), pod_kind(p))
        late = nameless_too_late(nameless, pods)
        if late:
            raise Fatal(f"series without a container name after the pod's container ran {PENDING_MS} ms "
                        f"(a pod cgroup or sandbox shipped): {late}")
        kinds = {k for _, k in verified.values()}
        if len(verified) < total or kinds != set(mix):
            fail(f"{len(verified)} pods verified (kinds {sorted(kinds)}), want {total} and every kind of {sorted(mix)}")
        return True

    wait(f"readings of {total} stress pods with all labels", 150, labelled, every=5)
    ok(f"readings of {len(verified)} stress pods labelled namespace/pod/container/workload/kind by the agent "
       f"started {agent_start}: " + ", ".join(sorted(s for s, _ in verified.values()))
       + f"; no pod cgroup or sandbox series ({len(nameless)} nameless series, all of containers just started)")


# The agent ships neither a pod's own cgroup nor its sandbox; a container whose status has not
# reached its pod watch yet ships named by the pod only. The watch has the status within seconds of
# the container's start: a nameless reading later than this is a pod cgroup or sandbox shipped.
PENDING_MS = 15_000


def nameless_too_late(nameless, pods):
    """{series: bucket times} of readings without a container name -> those of a running stress pod
    later than PENDING_MS after its container started."""
    start = {series_of(p)[:-len(p["spec"]["containers"][0]["name"])]: started_ms(p) for p in pods}
    return sorted(f"{series}@{t}" for series, times in nameless.items() for t in times
                  if start.get(series) is not None and t >= start[series] + PENDING_MS)


# ---------------------------------------------------------------- 4. the agent's /metrics

AGENT_SERIES = "stressmix_agent_container_"  # agent/src/container_metrics.rs
OWNER_LABELS = ("namespace", "pod", "container", "workload", "kind")
PRESSURE_SERIES = {(r, level) for r in ("cpu", "memory", "io") for level in ("some", "full")}
# A hog at load 100 under a limit of a tenth of a core is throttled in most 100 ms bandwidth periods
# it runs in: 52-100 % measured here (less in an interval it started or ended in, and an emulated
# vCPU shared with the node's work does not run it in every period). Throttled time per second
# depends on how long the emulated guest takes to spend the quota: 0.24-0.81 s/s measured here. The
# bounds ask for throttling clearly above none (an unthrottled container shows 0), not its size:
# equality with cpu.stat is make test-kmod's.
HOG_THROTTLED_PERIODS_PERCENT = 20
HOG_THROTTLED_SECONDS_PER_SECOND = 0.1

SAMPLE_LINE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})?'
                         r' (\S+)(?: \S+)?')
LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """OpenMetrics text -> [(name, {label: value}, value)]; a line of no known form fails."""
    lines = text.rstrip("\n").split("\n")
    if lines[-1] != "# EOF":
        raise Fatal(f"the agent's /metrics does not end with '# EOF' (OpenMetrics): {lines[-1][:200]!r}")
    samples = []
    for line in lines[:-1]:
        if line.startswith("# HELP ") or line.startswith("# TYPE ") or line.startswith("# UNIT "):
            continue
        m = SAMPLE_LINE.fullmatch(line)
        if not m:
            raise Fatal(f"the agent's /metrics has a line of no OpenMetrics form: {line[:200]!r}")
        labels = {k: re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), v)
                  for k, v in LABEL_PAIR.findall(m.group(2) or "")}
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def scrape_agent():
    """The agent's /metrics as a Prometheus on the pod network scrapes it: the pod's address and the
    port and path of its prometheus.io annotations, asked from the node (pod addresses stay in the
    guest)."""
    pod = agent_pod()
    notes = pod["metadata"].get("annotations", {})
    if notes.get("prometheus.io/scrape") != "true":
        raise Fatal(f"agent {pod['metadata']['name']} lacks prometheus.io/scrape=true: {notes}")
    port, path, ip = notes.get("prometheus.io/port", ""), notes.get("prometheus.io/path", ""), pod["status"].get("podIP", "")
    if not port.isdigit() or not re.fullmatch(r"/[A-Za-z0-9/_.-]*", path) or not re.fullmatch(r"[0-9.]+", ip):
        raise Fatal(f"agent {pod['metadata']['name']}: port {port!r}, path {path!r}, pod IP {ip!r}")
    # bash's /dev/tcp, as a scraper does: the request, then the answer until the server closes (HTTP
    # 1.0). Not `printf | socat`: socat half-closes the connection at the request's end, which hyper
    # takes as the client leaving (182 of 200 such requests to a local log service, the same hyper,
    # got no answer; 0 of 200 over /dev/tcp).
    answer = guest(f"exec 3<>/dev/tcp/{ip}/{port} && printf 'GET {path} HTTP/1.0\\r\\nHost: {ip}:{port}\\r\\n\\r\\n' >&3"
                   f" && timeout 15 cat <&3")
    # guest() reads text with universal newlines: the answer's CRLFs arrive as LFs.
    head, _, body = answer.partition("\n\n")
    status, *headers = head.split("\n")
    if not re.fullmatch(r"HTTP/1\.[01] 200 OK", status):
        fail(f"GET http://{ip}:{port}{path} in the guest: {answer[:300]!r}")
    kind = [h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("content-type:")]
    if not kind or not kind[0].startswith("application/openmetrics-text"):
        raise Fatal(f"the agent's /metrics answers Content-Type {kind}, want application/openmetrics-text")
    return parse_exposition(body)


def check_metrics():
    wl = workload()
    wname = wl["metadata"]["name"]
    mix = {e["kind"]: e["replicas"] for e in wl["spec"]["mix"]}
    total = sum(mix.values())
    verified = {}
    scrapes = 0

    # As in check attribution: pods live 30 s, so gather scrapes until as many pods as the Workload
    # runs, every kind among them, have shown every series with exactly their labels.
    def exported():
        nonlocal scrapes
        samples = scrape_agent()
        scrapes += 1
        dropped = [v for n, _, v in samples if n == AGENT_SERIES + "series_dropped"]
        if dropped != [0]:
            raise Fatal(f"stressmix_agent_container_series_dropped is {dropped} on a node of a few pods, want [0]")
        by_pod, problems = {}, []
        for name, labels, value in samples:
            if name.startswith(AGENT_SERIES) and "pod" in labels:
                by_pod.setdefault(labels["pod"], []).append((name.removeprefix(AGENT_SERIES), labels, value))
        for p in stress_pods(wl):
            name = p["metadata"]["name"]
            if not started_before(p, 15) or name not in by_pod:
                continue
            want = (p["metadata"]["namespace"], name, p["spec"]["containers"][0]["name"], wname, pod_kind(p))
            owners = {tuple(labels.get(k) for k in OWNER_LABELS) for _, labels, _ in by_pod[name]}
            if owners != {want}:
                raise Fatal(f"pod {name}: series labelled {sorted(owners)} at the agent's /metrics, want {want}")
            got = {n: v for n, _, v in by_pod[name] if n != "pressure_percent"}
            pressure = {(labels.get("resource"), labels.get("level")) for n, labels, _ in by_pod[name]
                        if n == "pressure_percent"}
            missing = {"cpu_percent", "memory_bytes", "disk_read_bytes_per_second",
                       "disk_write_bytes_per_second"} - got.keys()
            if missing or pressure != PRESSURE_SERIES:
                problems.append(f"pod {name}: no {sorted(missing)}, pressure series {sorted(pressure)}")
                continue
            if got["memory_bytes"] <= 0:
                raise Fatal(f"pod {name}: container_memory_bytes {got['memory_bytes']}")
            if pod_kind(p) == "cpu":
                periods = got.get("cpu_throttled_periods_percent")
                seconds = got.get("cpu_throttled_seconds_per_second")
                if periods is None or seconds is None or periods < HOG_THROTTLED_PERIODS_PERCENT \
                        or seconds < HOG_THROTTLED_SECONDS_PER_SECOND:
                    problems.append(f"cpu pod {name} (limit {limit_cpu_percent(wl):g} % of a core): throttled "
                                    f"{periods} % of periods, {seconds} s/s; want at least "
                                    f"{HOG_THROTTLED_PERIODS_PERCENT} % and {HOG_THROTTLED_SECONDS_PER_SECOND} s/s")
                    continue
                verified[p["metadata"]["uid"]] = (name, pod_kind(p), f"throttled {periods:.0f} %, {seconds:.2f} s/s")
            else:
                verified[p["metadata"]["uid"]] = (name, pod_kind(p), f"{got['memory_bytes'] / MiB:.0f} MiB")
        kinds = {k for _, k, _ in verified.values()}
        if len(verified) < total or kinds != set(mix):
            fail(f"{len(verified)} pods verified at the agent's /metrics (kinds {sorted(kinds)}), "
                 f"want {total} and every kind of {sorted(mix)}" + "".join(f"; {p}" for p in problems))
        return True

    wait(f"the agent's /metrics to show {total} stress pods", 150, exported, every=5)
    ok(f"the agent's /metrics (at its prometheus.io address; scrapes: {scrapes}) has usage, 6 pressure series "
       f"and throttling of {len(verified)} stress pods, labelled namespace/pod/container/workload/kind, none "
       f"dropped: " + ", ".join(f"{n} ({k}: {what})" for n, k, what in sorted(verified.values())))


# ---------------------------------------------------------------- 5. numbers


def check_numbers():
    wl = workload()
    mix = {e["kind"]: e for e in wl["spec"]["mix"]}
    lim_mem = limit_bytes(wl)
    cpu_limit = limit_cpu_percent(wl)
    want_cpu = float(os.environ.get("STRESSMIX_E2E_CPU_PERCENT", cpu_limit))
    def enough():
        now = int(time.time() * 1000)
        rows = api("/api/v1/query/containers", **{"from": now - 150_000, "to": now, "step_ms": 5000,
                                                  "workload": wl["metadata"]["name"]})
        by_kind = {}
        for r in rows:
            if r["container"]:  # a container just started, before its name reached the agent (PENDING_MS)
                by_kind.setdefault(r["kind"], {}).setdefault(r["series"], []).append(r)
        # A pod's first reading may catch it starting; ask for 6 readings of every series.
        short = {f"{k}:{s}": len(v) for k in mix for s, v in by_kind.get(k, {"-": []}).items() if len(v) < 6}
        if short:
            fail(f"fewer than 6 readings in the last 150 s: {short}")
        return now, by_kind

    now, by_kind = wait("6 readings of every stress series", 150, enough, every=5)
    since = now - 150_000
    figures = []
    if "cpu" in mix:
        for s, rs in sorted(by_kind["cpu"].items()):
            vals = [r["cpu_percent"] for r in rs]
            med = statistics.median(vals)
            if abs(med - want_cpu) > 2:
                fail(f"{s}: median cpu {med:.2f} % of a core over {len(vals)} samples, want {want_cpu} ± 2 "
                     f"(limit {cpu_limit} %); samples {[round(v, 1) for v in vals]}")
            figures.append(f"{s} cpu median {med:.2f} % ({len(vals)} samples)")
    if "memory" in mix:
        held = parse_bytes(mix["memory"]["bytes"])
        for s, rs in sorted(by_kind["memory"].items()):
            vals = [r["memory_bytes"] for r in rs]
            over = [v for v in vals if v >= lim_mem]
            holding = [v for v in vals if v >= held]
            if over:
                fail(f"{s}: memory {over} at or above the {lim_mem} limit")
            # A pod allocates its bytes in its first seconds; most samples must show them held.
            if len(holding) * 2 < len(vals):
                fail(f"{s}: only {len(holding)} of {len(vals)} samples hold >= {held} bytes: {vals}")
            figures.append(f"{s} memory {min(holding)}..{max(holding)} B ({len(holding)}/{len(vals)} samples >= {held})")
    if "disk" in mix:
        for s, rs in sorted(by_kind["disk"].items()):
            w = max(r["disk_write_bytes_per_sec"] for r in rs)
            ops = max(r["io_ops_per_sec"] for r in rs)
            if w <= 0 or ops <= 0:
                fail(f"{s}: disk write rate max {w} B/s, ops max {ops}/s: want both > 0")
            figures.append(f"{s} disk write max {w / MiB:.1f} MiB/s, ops max {ops:.1f}/s")
    if "io" in mix:
        for s, rs in sorted(by_kind["io"].items()):
            ops = max(r["io_ops_per_sec"] for r in rs)
            if ops <= 0:
                fail(f"{s}: io ops max {ops}/s, want > 0")
            figures.append(f"{s} io ops max {ops:.1f}/s")
    else:
        say("examples/workload.yaml declares no io pod: the ops/s check runs on the disk pod")
    node = agent_pod()["spec"]["nodeName"]
    nodes = api("/api/v1/query/nodes", **{"from": since, "to": now, "step_ms": 5000, "node": node})
    if not nodes:
        fail(f"no node readings of {node}")
    total = {r["memory_total_bytes"] for r in nodes}
    meminfo = guest("grep MemTotal /proc/meminfo").split()
    want_total = int(meminfo[1]) * 1024
    if total != {want_total}:
        fail(f"node {node} memory_total_bytes {total}, the guest's MemTotal is {want_total}")
    figures.append(f"node {node} memory total {want_total} B = the guest's MemTotal")
    for f in figures:
        ok(f)


# ---------------------------------------------------------------- 6. the dashboards' queries


def pods_the_cluster_ran(wl):
    """Names of the Workload's pods now and of those its namespace's events mention (the last hour)."""
    names = {p["metadata"]["name"] for p in stress_pods(wl, running_only=False)}
    events = kubectl_json("-n", wl["metadata"]["namespace"], "get", "events")["items"]
    names |= {e["involvedObject"]["name"] for e in events if e["involvedObject"].get("kind") == "Pod"}
    return names


def typed_answer(where, target, variables, from_ms, to_ms, may_be_empty=False):
    """A dashboard query as Grafana sends it: HTTP 200 and rows holding its typed columns."""
    status, body, url, params = dc.run_query(LOGSVC, target, variables, from_ms, to_ms)
    if status != 200 or not isinstance(body, list) or (not body and not may_be_empty):
        fail(f"{where}: GET {url} -> {status}: {str(body)[:200]}")
    error = dc.row_error(target, body)
    if error:
        fail(f"{where}: {error}")
    return body, url, params


def check_dashboard():
    wl = workload()
    total = sum(e["replicas"] for e in wl["spec"]["mix"])
    # The Workload's pods start together and live 30 s: wait for a moment when all have run 12 s, so
    # each must have a series in the window.
    wait(f"all {total} stress pods running for 12 s", 90,
         lambda: len([p for p in stress_pods(wl) if started_before(p, 12)]) == total, every=1)
    container = {p["metadata"]["name"]: p["spec"]["containers"][0]["name"] for p in stress_pods(wl)}
    now = int(time.time() * 1000)
    # The newest 20 s: pods come and go every few seconds (30 s each), so the pods of the window are
    # those running now that the agent has read (15 s) plus at most the ones they replaced.
    from_ms, to_ms = now - 20_000, now
    current = sorted(series_of(p) for p in stress_pods(wl) if started_before(p, 12))
    if len(current) != total:
        fail(f"{len(current)} of {total} stress pods have run 12 s; the pods changed under the check")
    ran = pods_the_cluster_ran(wl)
    checked = 0
    nameless = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "grafana", "dashboards", "*.json"))):
        dash = json.load(open(path, encoding="utf-8"))
        title = os.path.basename(path)
        variables = {}
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            inf = v["query"]["infinityQuery"]
            status, body, url, _ = dc.run_query(LOGSVC, inf, variables, from_ms, to_ms)
            if status != 200 or not isinstance(body, list):
                fail(f"{title} variable ${v['name']}: GET {url} -> {status}: {str(body)[:200]}")
            options = [row[inf["columns"][0]["selector"]] for row in body]
            variables[v["name"]] = v["allValue"] if v.get("allValue") else ",".join(options)
        for p in dc.all_panels(dash["panels"]):
            for t in p.get("targets", []):
                where = f"{title} / {p.get('title')!r} {t.get('refId')}"
                # OOM kills are events: none in the window is an answer (check oom runs these
                # queries over its kills).
                body, url, params = typed_answer(where, t, variables, from_ms, to_ms,
                                                 may_be_empty=t.get("url", "").endswith("/oom-kills"))
                labels = [c["selector"] for c in t.get("columns", []) if c["type"] == "string"]
                checked += 1
                if not url.endswith("/query/containers") or t.get("format") != "timeseries":
                    continue
                if "series" not in labels:
                    fail(f"{where}: a container series query without a series column ({labels})")
                names = {row["series"] for row in body if row["series"].startswith("stress/")}
                for row in body:
                    if row["series"] in names and row["series"].endswith("/"):
                        nameless.setdefault(row["series"], set()).add(row["time"])
                names -= set(nameless)
                per_pod = {}
                for n in names:
                    per_pod.setdefault(n.split("/")[1], []).append(n)
                twice = {k: v for k, v in per_pod.items() if len(v) > 1}
                if twice:
                    fail(f"{where}: pods with more than one series: {twice}")
                stray = sorted(k for k in per_pod if k not in ran)
                if stray:
                    fail(f"{where}: series of pods the cluster never ran: {stray} (pods: {sorted(ran)})")
                wrong = sorted(n for n in names if n.split("/")[2] != container.get(n.split("/")[1], n.split("/")[2]))
                if wrong:
                    fail(f"{where}: series naming another container than the pod's: {wrong}")
                absent = sorted(set(current) - names)
                if absent:
                    fail(f"{where}: no series for running pods {absent} (series: {sorted(names)})")
    ok(f"{checked} dashboard queries answered 200 with typed rows; every container series query holds one "
       f"series per stress pod, each a pod the cluster ran, among them every running pod: {', '.join(current)}")
    late = nameless_too_late(nameless, stress_pods(wl))
    if late:
        fail(f"dashboard series without a container name after the pod's container ran {PENDING_MS} ms: {late}")


# ---------------------------------------------------------------- 7. faults


def boot_rows(db, boot_id):
    return db.execute(
        "SELECT b.sequence, b.ts FROM batches b JOIN boots bo ON bo.id = b.boot WHERE bo.boot_id = ?"
        " ORDER BY b.sequence", (boot_id,)).fetchall()


def contiguous(seqs):
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False


def check_faults():
    interval_ms = 5000
    # The agent's pod deleted mid-run: a new boot id, no sequence gap in either boot, and no time gap
    # between the boots beyond the agent's absence.
    old_pod = agent_pod()
    old_boot = agent_boot_id(old_pod)
    t_delete = time.time()
    sh(["kubectl", "-n", NS, "delete", "pod", old_pod["metadata"]["name"], "--wait=true", "--timeout=120s"])
    sh(["kubectl", "-n", NS, "rollout", "status", "daemonset/stressmix-agent", "--timeout=180s"], timeout=200)
    new_pod = agent_pod()
    new_boot = wait("the new agent's boot id", 60, lambda: agent_boot_id(agent_pod()))
    if new_boot == old_boot:
        fail(f"the agent came back with the same boot id {old_boot}")
    absence_ms = agent_started_ms(new_pod) - int(t_delete * 1000)

    def both_boots():
        db = copy_database()
        a, b = boot_rows(db, old_boot), boot_rows(db, new_boot)
        if len(b) < 3:
            fail(f"{len(b)} batches of the new boot {new_boot} so far")
        return a, b

    a, b = wait("3 batches of the new agent", 90, both_boots, every=5)
    for boot, rows in ((old_boot, a), (new_boot, b)):
        seqs = [r[0] for r in rows]
        if not contiguous(seqs) or seqs[0] != 0:
            fail(f"boot {boot}: sequences {seqs[:3]}..{seqs[-3:]} ({len(seqs)}) are not 0..n without a gap")
    gap_ms = b[0][1] - a[-1][1]
    # Its last interval before the delete, its first after the start, and its start-up (pod watch).
    if gap_ms > absence_ms + 2 * interval_ms + 10_000:
        fail(f"{gap_ms} ms between the old agent's last batch and the new one's first, but it was away "
             f"only {absence_ms} ms")
    ok(f"agent pod deleted: boot {old_boot} sequences 0..{a[-1][0]} then boot {new_boot} 0..{b[-1][0]}, "
       f"no gap; {gap_ms} ms between them for an absence of {absence_ms} ms")

    # The log service's pod deleted: every batch stored before is still there (its volume), and the
    # agent's buffer fills the time it was away (its boot's sequences stay without a gap).
    before = copy_database()
    acked = set(before.execute("SELECT boot, sequence FROM batches").fetchall())
    acked_boots = dict(before.execute("SELECT id, boot_id FROM boots").fetchall())
    old_logsvc = kubectl_json("-n", NS, "get", "pods", "-l", "app.kubernetes.io/component=logsvc")["items"]
    t_delete = time.time()
    for p in old_logsvc:
        sh(["kubectl", "-n", NS, "delete", "pod", p["metadata"]["name"], "--wait=true", "--timeout=120s"])
    sh(["kubectl", "-n", NS, "rollout", "status", "deployment/stressmix-logsvc", "--timeout=180s"], timeout=200)
    away_s = time.time() - t_delete

    def refilled():
        db = copy_database()
        boots = {v: k for k, v in db.execute("SELECT id, boot_id FROM boots").fetchall()}
        have = set(db.execute("SELECT boot, sequence FROM batches").fetchall())
        lost = [(acked_boots[bt], s) for bt, s in acked
                if (boots.get(acked_boots[bt]), s) not in have]
        if lost:
            raise Fatal(f"{len(lost)} batches stored before the log service's restart are gone: {lost[:5]}")
        rows = boot_rows(db, new_boot)
        seqs = [r[0] for r in rows]
        if not contiguous(seqs) or rows[-1][1] < int(t_delete * 1000) + int(away_s * 1000) + interval_ms:
            fail(f"boot {new_boot}: {len(seqs)} sequences, up to {seqs[-1] if seqs else None}, "
                 f"newest at {rows[-1][1] if rows else None}")
        return len(acked), seqs

    n, seqs = wait("the agent's buffer to refill the log service's absence", 120, refilled, every=5)
    ok(f"log service pod deleted ({away_s:.0f} s away): all {n} batches stored before are still there; "
       f"boot {new_boot} sequences 0..{seqs[-1]} without a gap")


# ---------------------------------------------------------------- 8. OOM kills

OOM_WORKLOAD = "oom"
# A victim's kill counter stays at /metrics for RecentPods::KEEP (60) collections of 5 s after the
# pod was last seen; check those killed well inside that.
OOM_COUNTER_KEPT_MS = 240_000


def oom_manifest(namespace):
    """One memory pod whose resident bytes plus the process's own pages (page tables, stacks: all
    charged to its cgroup) cannot fit: the stressed bytes are 16 KiB under the limit, which the
    Workload's rules allow (bytes below the limit)."""
    return {
        "apiVersion": "stressmix.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": OOM_WORKLOAD, "namespace": namespace},
        "spec": {
            "mix": [{"kind": "memory", "replicas": 1, "bytes": "24560Ki"}],
            "template": {
                "resources": {"limits": {"cpu": "100m", "memory": "24Mi"}},
                "durationSeconds": 30,
                "lifetimeSeconds": 150,
            },
        },
    }


def check_oom_counters(ns, rows):
    """The agent's OOM kill counters of the victims in `rows` (the log service's events) killed
    within OOM_COUNTER_KEPT_MS: labelled with their Workload and kind, at least the events' count."""
    recent = {}
    kept_since = time.time() * 1000 - OOM_COUNTER_KEPT_MS
    for r in rows:
        if r["time"] >= kept_since:
            recent[r["pod"]] = recent.get(r["pod"], 0) + r["count"]
    counters = {}
    for name, labels, value in scrape_agent():
        if name == AGENT_SERIES + "oom_kills_total" and labels.get("workload") == OOM_WORKLOAD:
            if (labels.get("namespace"), labels.get("kind")) != (ns, "memory"):
                raise Fatal(f"an OOM kill counter of {OOM_WORKLOAD} at the agent's /metrics labelled {labels}, "
                            f"want namespace {ns}, kind memory")
            counters[labels.get("pod")] = counters.get(labels.get("pod"), 0) + value
    short = {p: (n, counters.get(p)) for p, n in recent.items() if counters.get(p, 0) < n}
    if short:
        fail(f"victims whose kill counters at the agent's /metrics are below the log service's events "
             f"(pod: (events, counter)): {short}")
    if not recent:
        fail(f"no kill of {OOM_WORKLOAD} in the last {OOM_COUNTER_KEPT_MS // 1000} s to find at the agent's /metrics")
    return ", ".join(f"{p}={counters[p]:g}" for p in sorted(recent))


def check_oom():
    wl = workload()
    ns = wl["metadata"]["namespace"]
    manifest = json.dumps(oom_manifest(ns))
    r = subprocess.run(["kubectl", "apply", "-f", "-"], input=manifest, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"kubectl apply of Workload {OOM_WORKLOAD}: {r.stderr.strip()}")
    since = int(time.time() * 1000) - 5_000
    try:
        seen = {}

        def killed_twice():
            now = int(time.time() * 1000)
            rows = api("/api/v1/events/oom-kills", **{"from": since, "to": now, "workload": OOM_WORKLOAD})
            for row in rows:
                if (row.get("namespace"), row.get("kind"), row.get("slot")) != (ns, "memory", 0):
                    raise Fatal(f"an OOM kill of Workload {OOM_WORKLOAD} attributed to {row}, "
                                f"want namespace {ns}, kind memory, slot 0")
            # What the kubelet saw: runs the operator counted as failed with reason OOMKilled.
            st = kubectl_json("-n", ns, "get", "workload", OOM_WORKLOAD).get("status", {})
            oom_runs = st.get("kinds", {}).get("memory", {}).get("failedRuns", {}).get("OOMKilled", 0)
            kills = sum(r["count"] for r in rows)
            seen.update(rows=rows, kills=kills, oom_runs=oom_runs)
            if len(rows) < 2 or oom_runs < 2:
                fail(f"{len(rows)} OOM kill events of {OOM_WORKLOAD} in the log service, {oom_runs} runs "
                     f"OOMKilled in its status; want 2 of each (the slot's pod and its replacement)")
            return True

        wait(f"OOM kills of two successive pods of Workload {OOM_WORKLOAD}", 420, killed_twice, every=5)
        # The log service may trail the status by a collection or two, never the other way round by more.
        if seen["kills"] < seen["oom_runs"] - 1:
            fail(f"the kernel's count ({seen['kills']} kills) trails the kubelet's ({seen['oom_runs']} runs "
                 f"OOMKilled) by more than one")
        now = int(time.time() * 1000)
        counts = api("/api/v1/query/oom-kills", **{"from": since, "to": now, "workload": OOM_WORKLOAD})
        slot0 = [c for c in counts if (c.get("kind"), c.get("slot")) == ("memory", 0)]
        if not slot0 or slot0[0]["kills"] < 2:
            fail(f"OOM kills per slot {counts}: want slot 0 of kind memory with at least 2")
        # The dashboard's OOM panels, as Grafana asks, over these kills: typed rows.
        variables = {"workload": OOM_WORKLOAD, "kind": "memory", "container": ""}
        panels = 0
        for path in sorted(glob.glob(os.path.join(ROOT, "grafana", "dashboards", "*.json"))):
            dash = json.load(open(path, encoding="utf-8"))
            for p in dc.all_panels(dash["panels"]):
                for t in p.get("targets", []):
                    if not t.get("url", "").endswith("/oom-kills"):
                        continue
                    typed_answer(f"{os.path.basename(path)} / {p.get('title')!r}", t, variables, since, now)
                    panels += 1
        if panels < 2:
            fail(f"{panels} dashboard panels query OOM kills, want the table per slot and the event table")
        counters = wait("the agent's OOM kill counters", 30, lambda: check_oom_counters(ns, seen["rows"]))
        ok(f"OOM kills of Workload {OOM_WORKLOAD}: slot 0 (kind memory) counted {slot0[0]['kills']} kills "
           f"({seen['oom_runs']} runs OOMKilled in the Workload's status; {panels} dashboard OOM panels "
           f"answer typed rows): " + "; ".join(
               f"{r['pod']} {r['container'] or '(pod)'} observed={r['observed']} {r['cgroup_path']}"
               for r in seen["rows"]) + f"; the agent's /metrics counts oom_kills_total {counters}")
    finally:
        sh(["kubectl", "-n", ns, "delete", "workload", OOM_WORKLOAD, "--wait=true", "--timeout=120s"], timeout=150)

        def gone():
            left = [p["metadata"]["name"] for p in kubectl_json("-n", ns, "get", "pods")["items"]
                    if p["metadata"].get("labels", {}).get("stressmix.dev/workload") == OOM_WORKLOAD]
            if left:
                fail(f"pods of {OOM_WORKLOAD} still there: {left}")
            return True

        wait(f"the pods of {OOM_WORKLOAD} to go", 120, gone)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    what = sys.argv[1]
    try:
        if what == "pods":
            check_pods()
        elif what == "module" and len(sys.argv) == 3 and sys.argv[2] in ("build", "none"):
            check_module(sys.argv[2])
        elif what == "attribution":
            check_attribution()
        elif what == "numbers":
            check_numbers()
        elif what == "metrics":
            check_metrics()
        elif what == "dashboard":
            check_dashboard()
        elif what == "faults":
            check_faults()
        elif what == "oom":
            check_oom()
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (Failed, Fatal) as e:
        say(f"FAIL {what}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
