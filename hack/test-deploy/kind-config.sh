# shellcheck shell=bash
# The kind cluster config that hack/kind-up.sh feeds to `kind create cluster`: valid YAML, one node,
# host ports 3000/8000 on loopback mapped to the chart's NodePorts, the module build's host mounts
# read-only (one per /usr/lib/linux-kbuild-* directory). kind itself cannot run here (no Docker).
# Sourced by run.sh (needs lib.sh).

kind_config_checks() {
	local tmp out
	td_log "kind config (hack/kind-up.sh --print-config)"
	tmp=$(mktemp -d)
	mkdir -p "$tmp/linux-kbuild-6.1" "$tmp/linux-kbuild-6.12"
	STRESSMIX_KBUILD_ROOT=$tmp hack/kind-up.sh --print-config >"$tmp/kind.yaml" ||
		{ fail "hack/kind-up.sh --print-config failed"; return; }
	if out=$(/usr/bin/python3 - "$tmp/kind.yaml" "$tmp" <<'PY'
import sys, yaml
config_path, kbuild_root = sys.argv[1], sys.argv[2]
cfg = yaml.safe_load(open(config_path))
values = yaml.safe_load(open("charts/stressmix/values.yaml"))
kind_values = yaml.safe_load(open("charts/stressmix/ci/kind-values.yaml"))
problems = []
if cfg.get("kind") != "Cluster" or cfg.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
    problems.append("not a kind.x-k8s.io/v1alpha4 Cluster")
nodes = cfg.get("nodes", [])
if len(nodes) != 1 or nodes[0].get("role") != "control-plane":
    problems.append(f"want one control-plane node, got {nodes}")
node = nodes[0] if nodes else {}
ports = {(p["hostPort"], p["containerPort"], p.get("listenAddress")) for p in node.get("extraPortMappings", [])}
want_ports = {(3000, values["grafana"]["service"]["nodePort"], "127.0.0.1"),
              (8000, kind_values["logsvc"]["service"]["nodePort"], "127.0.0.1")}
if ports != want_ports:
    problems.append(f"port mappings {sorted(ports)}, want {sorted(want_ports)}")
mounts = {(m["hostPath"], m["containerPath"], m.get("readOnly")) for m in node.get("extraMounts", [])}
want_mounts = {(p, p, True) for p in ["/lib/modules", "/usr/src",
               f"{kbuild_root}/linux-kbuild-6.1", f"{kbuild_root}/linux-kbuild-6.12"]}
if mounts != want_mounts:
    problems.append(f"mounts {sorted(mounts)}, want {sorted(want_mounts)}")
print("; ".join(problems) if problems else "ok")
PY
	) && [[ $out == ok ]]; then
		pass "kind config: one node, 127.0.0.1:3000 -> Grafana NodePort, 127.0.0.1:8000 -> log service NodePort, module mounts read-only (kbuild dirs appended)"
	else
		fail "kind config: $out"
	fi
	rm -rf "$tmp"
}
