#!/usr/bin/env python3
"""Dashboard contract test: the Grafana dashboards in grafana/ against a real stressmix-logsvc.

Feeds the log service readings shaped like examples/readings-batch.json (two nodes, two Workloads,
system cgroups, 10 minutes at a 5 s interval), then, for several variable selections, runs every
panel query and every variable query of every dashboard the way the Infinity datasource (backend
parser) would: Grafana's variable and time-range substitution applied, the datasource URL
prefixed, the query parameters appended. Each answer must be HTTP 200, a JSON array whose rows
carry every declared column with its declared type, time ascending for time series, and exactly
the number of series (distinct values of the declared string columns) that the fed readings
imply. Annotation queries are run and checked the same way. Datasource uids in the dashboards must
match the provisioned datasource.

Standard library only. Usage:
  dashboard_contract.py --base-url http://127.0.0.1:PORT --batch examples/readings-batch.json --grafana grafana
"""

import argparse
import copy
import glob
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

INTERVAL_MS = 5_000
BATCHES = 120  # 10 minutes per node
WINDOW_MS = 15 * 60_000  # the dashboards' default range: now-15m .. now

failures = []
passes = 0


def ok(message):
    global passes
    passes += 1
    print(f"  ok    {message}")


def bad(message):
    failures.append(message)
    print(f"  FAIL  {message}")


# ---------------------------------------------------------------- readings we feed


def fed_batches(template, now_ms):
    """Two nodes' batches built from the example batch: every container of the example plus
    more pods, so workload, kind and container filters each select a strict subset."""
    base = template["containers"]
    by_kind = {c.get("kind"): c for c in base}
    cpu, disk, system = by_kind["cpu"], by_kind["disk"], by_kind["system"]

    def pod(src, name, uid, workload, kind):
        c = copy.deepcopy(src)
        c.update(pod=name, pod_uid=uid, workload=workload, kind=kind, namespace="stress",
                 container="stress", container_id=uid.replace("-", "")[:32] * 2,
                 cgroup_path=f"/kubepods.slice/kubepods-pod{uid.replace('-', '_')}.slice/"
                             f"cri-containerd-{uid.replace('-', '')[:32] * 2}.scope",
                 cgroup_id=int(uid[-6:], 16))
        return c

    memory = pod(cpu, "lab-memory-0", "00000000-0000-4000-8000-00000000a001", "lab", "memory")
    memory.update(cpu_percent=3.0, cpu_percent_node=1.5, memory_bytes=104857600, memory_percent=0.41)
    node_a = [cpu, disk, memory, system]
    node_b = [
        pod(disk, "soak-io-0", "00000000-0000-4000-8000-00000000b001", "soak", "io"),
        pod(cpu, "soak-cpu-0", "00000000-0000-4000-8000-00000000b002", "soak", "cpu"),
        dict(copy.deepcopy(system), cgroup_path="/system.slice/kubelet.service"),
    ]
    nodes = [(template["node_name"], node_a, "0f8fad5b-d9cb-469f-a165-70867728950e"),
             ("stressmix-worker", node_b, "7c9e6679-7425-40de-944b-e07fc1f90ae7")]
    batches = []
    for node_name, containers, boot_id in nodes:
        for i in range(BATCHES):
            b = copy.deepcopy(template)
            b.update(node_name=node_name, boot_id=boot_id, sequence=i + 1,
                     timestamp_ms=now_ms - (BATCHES - 1 - i) * INTERVAL_MS - 1_000)
            b["containers"] = copy.deepcopy(containers)
            # Vary the values a little so averages are not all equal. Every container carries
            # pressure and throttling, as from an agent that reads PSI and cpu.stat.
            for slot, c in enumerate(b["containers"]):
                c["cpu_percent"] = round(c["cpu_percent"] * (0.9 + 0.002 * (i % 50)), 3)
                if c.get("pod"):
                    c["slot"] = slot
                for k, metric in enumerate(CONTENTION_METRICS):
                    c[metric] = round((k + 1) * (1.0 + 0.01 * (i % 30)), 3)
            b["oom_kills"] = [oom_kill(c) for c in b["containers"]
                              if (c.get("pod"), i) in OOM_KILLED]
            b["node"]["cpu_percent"] = 40.0 + (i % 20)
            batches.append(b)
    return batches


# The per-container pressure and throttling fields of a batch (api/src/readings.rs).
CONTENTION_METRICS = [f"{r}_pressure_{w}_percent" for r in ("cpu", "memory", "io") for w in ("some", "full")] + [
    "cpu_throttled_periods_percent", "cpu_throttled_seconds_per_sec"]
# (pod, batch index) of the OOM kills fed: a memory pod twice, a cpu pod of the other Workload once,
# so every variable selection of the test sees at least one.
OOM_KILLED = {("lab-memory-0", 30), ("lab-memory-0", 90), ("soak-cpu-0", 60)}


def oom_kill(c):
    """The kill of one process of container `c`, attributed as the agent would."""
    return {"cgroup_path": c["cgroup_path"], "count": 1, "observed": "cgroup",
            **{k: c[k] for k in ("namespace", "pod", "pod_uid", "container", "workload", "kind", "slot")}}


def post_batches(base_url, batches):
    for b in batches:
        req = urllib.request.Request(base_url + "/api/v1/readings", data=json.dumps(b).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.status // 100 != 2:
                    bad(f"POST batch {b['node_name']}#{b['sequence']}: HTTP {resp.status}")
                    return False
        except urllib.error.HTTPError as e:
            bad(f"POST batch {b['node_name']}#{b['sequence']}: HTTP {e.code}: {e.read()[:300]!r}")
            return False
    ok(f"log service accepted {len(batches)} batches")
    return True


# ---------------------------------------------------------------- what the fed readings imply


class Expect:
    def __init__(self, batches):
        self.containers = {}  # cgroup key -> reading (labels)
        self.nodes = set()
        self.latest = {}  # node -> containers of its newest batch
        self.kills = [k for b in batches for k in b["oom_kills"]]
        for b in batches:
            self.nodes.add(b["node_name"])
            self.latest[b["node_name"]] = b["containers"]
            for c in b["containers"]:
                self.containers[(b["node_name"], c["cgroup_path"])] = c

    @staticmethod
    def series_name(c):
        """The log service's series name (docs/architecture.md, log service)."""
        if c.get("pod"):
            return f"{c.get('namespace', '')}/{c['pod']}/{c.get('container', '')}"
        return c["cgroup_path"]

    def selected(self, params):
        """Containers the workload/kind/container filters of a query select ('All' = no filter)."""
        def wanted(name):
            values = [v for p in params.get(name, []) for v in p.split(",")]
            return None if (not values or any(v in ("", "All", "$__all") for v in values)) else set(values)
        w, k, n = wanted("workload"), wanted("kind"), wanted("container")
        return [c for c in self.containers.values()
                if (w is None or c.get("workload") in w) and (k is None or c.get("kind") in k)
                and (n is None or self.series_name(c) in n)]

    def series(self, url, params):
        if url.endswith("/query/containers"):
            return len(self.selected(params))
        if url.endswith("/query/nodes"):
            return len(self.nodes)
        if url.endswith("/query/pods-per-kind"):
            return len({c["kind"] for c in self.containers.values() if c.get("pod") and c.get("kind") != "system"})
        return None

    def selected_kills(self, params):
        """OOM kills the workload/kind filters of a query select."""
        chosen = {(c.get("workload"), c.get("kind")) for c in self.selected(
            {k: v for k, v in params.items() if k in ("workload", "kind")})}
        return [k for k in self.kills if (k["workload"], k["kind"]) in chosen]

    def rows(self, url, params):
        if url.endswith("/snapshot"):
            return sum(len(v) for v in self.latest.values())
        if url.endswith("/events/oom-kills"):
            return len(self.selected_kills(params))
        if url.endswith("/query/oom-kills"):
            return len({(k["workload"], k["kind"], k["slot"]) for k in self.selected_kills(params)})
        return None

    def label_values(self, url, params):
        label = url.rsplit("/", 1)[1]
        field = {"workloads": "workload", "kinds": "kind", "nodes": None, "containers": None}[label]
        chosen = self.selected({k: v for k, v in params.items() if k in ("workload", "kind")})
        if label == "containers":
            return sorted({self.series_name(c) for c in chosen})
        return sorted({c.get(field) for c in chosen if c.get(field)})


# ---------------------------------------------------------------- Grafana's side


def provisioned_datasources(grafana_dir):
    """uid -> type from grafana/provisioning/datasources/*.yaml (flat keys; no YAML library)."""
    found = {}
    for path in glob.glob(os.path.join(grafana_dir, "provisioning", "datasources", "*.yaml")):
        uid = typ = None
        for line in open(path, encoding="utf-8"):
            m = re.match(r"\s*-?\s*(uid|type):\s*(\S+)\s*$", line)
            if m:
                if m.group(1) == "uid":
                    uid = m.group(2)
                else:
                    typ = m.group(2)
            if uid and typ:
                found[uid] = typ
                uid = typ = None
    return found


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def substitute(text, variables, from_ms, to_ms):
    """Grafana's interpolation for what the dashboards use: ${__from}, ${__to}, ${__interval_ms},
    $var, ${var}, ${var:csv}. `variables` maps a name to its interpolated csv value."""
    builtins = {"__from": str(from_ms), "__to": str(to_ms),
                # Grafana: (to - from) / max data points, about the panel's pixel width.
                "__interval_ms": str(max((to_ms - from_ms) // 1000, 1))}

    def value(name):
        if name in builtins:
            return builtins[name]
        if name in variables:
            return variables[name]
        raise KeyError(f"unknown variable ${name}")

    text = re.sub(r"\$\{(\w+)(?::(\w+))?\}", lambda m: value(m.group(1)), text)
    return re.sub(r"\$(\w+)", lambda m: value(m.group(1)), text)


def run_query(base_url, target, variables, from_ms, to_ms):
    url = substitute(target["url"], variables, from_ms, to_ms)
    params = {}
    for p in target.get("url_options", {}).get("params", []):
        params.setdefault(p["key"], []).append(substitute(p["value"], variables, from_ms, to_ms))
    query = urllib.parse.urlencode([(k, v) for k, vs in params.items() for v in vs])
    full = base_url.rstrip("/") + url + ("?" + query if query else "")
    try:
        with urllib.request.urlopen(full, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), url, params
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300], url, params


def type_ok(declared, value):
    if declared == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if declared == "string":
        return isinstance(value, str)
    if declared == "timestamp_epoch":  # epoch milliseconds
        return isinstance(value, int) and not isinstance(value, bool) and 10**12 <= value < 10**14
    raise ValueError(f"column type {declared!r} not covered by this test")


def row_error(target, body):
    """Why the rows of an answer do not hold the target's columns with their types, or None."""
    for i, row in enumerate(body):
        for c in target.get("columns", []):
            if c["selector"] not in row:
                return f"row {i} lacks column {c['selector']!r}: {row}"
            if not type_ok(c["type"], row[c["selector"]]):
                return f"row {i} column {c['selector']!r} = {row[c['selector']]!r} is not {c['type']}"
    return None


def check_target(base_url, expect, where, target, variables, from_ms, to_ms):
    status, body, url, params = run_query(base_url, target, variables, from_ms, to_ms)
    if status != 200:
        bad(f"{where}: GET {url} -> HTTP {status}: {body!r}")
        return None
    if target.get("root_selector"):
        bad(f"{where}: root_selector {target['root_selector']!r} not expected (answers are arrays)")
        return None
    if not isinstance(body, list) or not body:
        bad(f"{where}: GET {url} returned no rows: {str(body)[:200]}")
        return None
    columns = target["columns"]
    error = row_error(target, body)
    if error:
        bad(f"{where}: {error}")
        return None
    labels = [c["selector"] for c in columns if c["type"] == "string"]
    series = len({tuple(row[k] for k in labels) for row in body})
    detail = f"{len(body)} rows, {series} series"
    if target.get("format") == "timeseries":
        times = [row["time"] for row in body]
        if times != sorted(times):
            bad(f"{where}: time is not ascending")
            return None
        if not all(from_ms - 60_000 <= t <= to_ms for t in times):
            bad(f"{where}: time outside the requested range")
            return None
        want = expect.series(url, params)
        if want is None:
            bad(f"{where}: no expectation for {url}; extend dashboard_contract.py")
            return None
        if series != want:
            bad(f"{where}: {series} series, the fed readings imply {want} (params {params})")
            return None
    elif target.get("format") == "table":
        want = expect.rows(url, params)
        if want is not None and len(body) != want:
            bad(f"{where}: {len(body)} rows, the fed readings imply {want}")
            return None
    ok(f"{where}: HTTP 200, {len(columns)} typed columns, {detail}")
    return body


def resolve_variables(base_url, expect, dashboard, selection, from_ms, to_ms, title):
    """Run each variable's query in order; return name -> interpolated value (Grafana's csv)."""
    values = {}
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        inf = v["query"]["infinityQuery"]
        where = f"{title} / variable ${v['name']} [{selection_name(selection)}]"
        body = check_target(base_url, expect, where, inf, values, from_ms, to_ms)
        if body is None:
            return None
        options = [row[inf["columns"][0]["selector"]] for row in body]
        _, _, url, params = run_query(base_url, inf, values, from_ms, to_ms)
        want = expect.label_values(url, params)
        if sorted(options) != want:
            bad(f"{where}: values {options}, the fed readings imply {want}")
            return None
        if v.get("regex"):
            pattern = v["regex"].strip("/")
            options = [o for o in options if re.search(pattern, o)]
        chosen = selection.get(v["name"])
        if chosen is None:  # All
            values[v["name"]] = v["allValue"] if v.get("allValue") else ",".join(options)
        else:
            if chosen not in options:
                bad(f"{where}: {chosen!r} not among the options {options}")
                return None
            values[v["name"]] = chosen
    return values


def selection_name(selection):
    return ", ".join(f"{k}={v}" for k, v in selection.items()) or "all variables All"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True, help="the log service, e.g. http://127.0.0.1:8000")
    ap.add_argument("--batch", required=True, help="example batch to shape the fed readings on")
    ap.add_argument("--grafana", required=True, help="the grafana/ directory")
    args = ap.parse_args()

    datasources = provisioned_datasources(args.grafana)
    if len(datasources) != 1:
        bad(f"expected one provisioned datasource, found {datasources}")
        return 1
    (ds_uid, ds_type), = datasources.items()
    ok(f"provisioned datasource uid {ds_uid} ({ds_type})")

    now_ms = int(time.time() * 1000)
    template = json.load(open(args.batch, encoding="utf-8"))
    batches = fed_batches(template, now_ms)
    if not post_batches(args.base_url, batches):
        return 1
    expect = Expect(batches)
    from_ms, to_ms = now_ms - WINDOW_MS, now_ms + 1_000

    dashboards = sorted(glob.glob(os.path.join(args.grafana, "dashboards", "*.json")))
    if not dashboards:
        bad("no dashboards in grafana/dashboards")
    for path in dashboards:
        dash = json.load(open(path, encoding="utf-8"))
        title = f"{os.path.basename(path)}"
        refs = [(f"panel {p.get('title')!r}", p.get("datasource")) for p in all_panels(dash["panels"])
                if p.get("type") != "row"]
        refs += [(f"panel {p.get('title')!r} target {t.get('refId')}", t.get("datasource"))
                 for p in all_panels(dash["panels"]) for t in p.get("targets", [])]
        refs += [(f"variable ${v['name']}", v.get("datasource")) for v in dash.get("templating", {}).get("list", [])
                 if v.get("type") == "query"]
        annotations = [a for a in dash.get("annotations", {}).get("list", []) if "target" in a]
        refs += [(f"annotation {a['name']!r}", a.get("datasource")) for a in annotations]
        refs += [(f"annotation {a['name']!r} target", a["target"].get("datasource")) for a in annotations]
        wrong = [f"{w}: {d}" for w, d in refs if not d or d.get("uid") != ds_uid or d.get("type") != ds_type]
        if wrong:
            bad(f"{title}: datasource refs not matching {ds_uid}/{ds_type}: {wrong}")
        else:
            ok(f"{title}: all {len(refs)} datasource refs use uid {ds_uid}")

        workloads = sorted({c["workload"] for c in expect.containers.values() if c.get("workload")})
        kinds = sorted({c["kind"] for c in expect.containers.values() if c.get("kind") not in (None, "system")})
        selections = [{}, {"workload": workloads[0]}, {"kind": kinds[0]}]
        for selection in selections:
            variables = resolve_variables(args.base_url, expect, dash, selection, from_ms, to_ms, title)
            if variables is None:
                continue
            for p in all_panels(dash["panels"]):
                for t in p.get("targets", []):
                    where = f"{title} / {p.get('title')!r} {t.get('refId')} [{selection_name(selection)}]"
                    check_target(args.base_url, expect, where, t, variables, from_ms, to_ms)
            for a in annotations:
                where = f"{title} / annotation {a['name']!r} [{selection_name(selection)}]"
                fields = {c["selector"] for c in a["target"]["columns"]}
                missing = [m["value"] for m in a.get("mappings", {}).values() if m["value"] not in fields]
                if missing:
                    bad(f"{where}: mappings name fields the query does not return: {missing}")
                    continue
                check_target(args.base_url, expect, where, a["target"], variables, from_ms, to_ms)

    print(f"dashboard contract: {passes} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
