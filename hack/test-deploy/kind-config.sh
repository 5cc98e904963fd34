# shellcheck shell=bash
# What hack/kind-up.sh decides before it creates anything (kind itself cannot run here: no Docker):
#   - the kind config it feeds to `kind create cluster`: valid YAML, one node, host ports 3000/8000 on
#     loopback mapped to the chart's NodePorts, /usr/src and the whole /usr/lib read-only, and no
#     /lib/modules mount (kind mounts it itself; a second one clashes);
#   - the module decision: build when headers are there; none, with the reason, under lockdown, Secure
#     Boot or without headers.
# Sourced by run.sh (needs lib.sh).

kind_config_checks() {
	local tmp out
	td_log "kind config (hack/kind-up.sh --print-config)"
	tmp=$(mktemp -d)
	hack/kind-up.sh --print-config >"$tmp/kind.yaml" ||
		{ fail "hack/kind-up.sh --print-config failed"; return; }
	if out=$(/usr/bin/python3 - "$tmp/kind.yaml" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
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
grafana_port = kind_values.get("grafana", {}).get("service", {}).get("nodePort",
               values["grafana"]["service"]["nodePort"])
want_ports = {(3000, grafana_port, "127.0.0.1"),
              (8000, kind_values["logsvc"]["service"]["nodePort"], "127.0.0.1")}
if ports != want_ports:
    problems.append(f"port mappings {sorted(ports)}, want {sorted(want_ports)}")
mounts = {(m["hostPath"], m["containerPath"], m.get("readOnly")) for m in node.get("extraMounts", [])}
usr_lib = kind_values["agent"]["module"].get("hostUsrLib")
want_mounts = {("/usr/src", "/usr/src", True), ("/usr/lib", usr_lib, True)}
if mounts != want_mounts:
    problems.append(f"mounts {sorted(mounts)}, want {sorted(want_mounts)} (kind-values agent.module.hostUsrLib={usr_lib})")
print("; ".join(problems) if problems else "ok")
PY
	) && [[ $out == ok ]]; then
		pass "kind config: one node, 127.0.0.1:3000 -> Grafana NodePort, 127.0.0.1:8000 -> log service NodePort, /usr/src and /usr/lib read-only, no second /lib/modules"
	else
		fail "kind config: $out"
	fi

	td_log "kind-up's module decision (hack/kind-up.sh --print-module)"
	local host=$tmp/host rel=6.1.0-99-amd64
	mkdir -p "$host/lib/modules/$rel/build" "$host/sys/kernel/security" "$host/sys/firmware/efi/efivars"
	kind_module_case "build dir without a Makefile" "none: no kernel headers"
	: >"$host/lib/modules/$rel/build/Makefile"
	kind_module_case "headers present" "build"
	printf 'none [integrity] confidentiality\n' >"$host/sys/kernel/security/lockdown"
	kind_module_case "lockdown" "none: kernel lockdown is active"
	printf '[none] integrity confidentiality\n' >"$host/sys/kernel/security/lockdown"
	printf '\x06\x00\x00\x00\x01' >"$host/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
	kind_module_case "Secure Boot on" "none: Secure Boot is on"
	printf '\x06\x00\x00\x00\x00' >"$host/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
	kind_module_case "Secure Boot off, lockdown none" "build"
	rm "$host/lib/modules/$rel/build/Makefile"
	kind_module_case "no headers" "none: no kernel headers for $rel"
	STRESSMIX_MODULE_MODE=none kind_module_case "STRESSMIX_MODULE_MODE=none" "none: STRESSMIX_MODULE_MODE=none"
	rm -rf "$tmp"
}

# kind_module_case DESCRIPTION EXPECTED-PREFIX (uses $host and $rel of the caller)
kind_module_case() {
	local out
	out=$(STRESSMIX_HOST_ROOT=$host STRESSMIX_KERNEL_RELEASE=$rel hack/kind-up.sh --print-module 2>&1) ||
		{ fail "kind-up --print-module ($1) failed: $out"; return; }
	if [[ $out == "$2"* && ($2 != build || $out == build) ]]; then
		pass "kind-up module decision, $1: $out"
	else
		fail "kind-up module decision, $1: got '$out', want '$2…'"
	fi
}

# `make help` names every target a user needs, and each of them exists.
make_help_checks() {
	local help target missing=()
	help=$(make --no-print-directory help)
	for target in up down images crds test bench-operator bench-kmod bench-logsvc bench-agent; do
		if ! grep -qE "^make $target( |$)" <<<"$help"; then
			missing+=("$target (not in make help)")
		elif ! make --no-print-directory -n "$target" >/dev/null 2>&1; then
			missing+=("$target (no such make target)")
		fi
	done
	if ((${#missing[@]})); then
		fail "make help: ${missing[*]}"
	else
		pass "make help lists up, down, images, crds, test and the four benchmarks, and each target exists"
	fi
}
