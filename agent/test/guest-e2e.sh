#!/bin/sh
# Runs inside the qemu guest (kmod/test/lib.sh initramfs): the log service on the guest's loopback,
# a CPU-bound cgroup and a memory cgroup, and the module init chain as the DaemonSet runs it, one
# agent run (its own --node-name) per phase:
#   guest-fallback  kmod-build failed (/bin/e2e-build-failure): load-module reports it, the agent
#                   reads cgroupfs and says why
#   guest-module    kmod-build's .ko (/bin/e2e-built.ko): load-module loads it, the agent reads it
#   guest-stale     a .ko of another srcversion (/bin/e2e-stale.ko): load-module says stale-module
#   guest-own       the agent's own loader (--module-path, mode none) and --unload-on-exit
# Sends the log service's database (and the agents' logs) back over the serial console.
set -u
MEM_BYTES=67108864
K=/tmp/kmod
fail() { echo "KMODTEST FAIL $1"; exit 1; }

for c in cpu memory; do
	echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || fail "enable-controller-$c"
done
echo "+io" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || echo "E2E-GUEST no io controller"
mkdir -p /sys/fs/cgroup/e2e-cpu /sys/fs/cgroup/e2e-mem /sys/fs/cgroup/e2e-services "$K"

# Services in their own cgroup so they do not count against the loads.
echo $$ > /sys/fs/cgroup/e2e-services/cgroup.procs
stressmix-logsvc --listen 127.0.0.1:8000 --db /tmp/readings.db --synchronous normal > /tmp/logsvc.log 2>&1 &
logsvc=$!
i=0
until wget -q -O /dev/null http://127.0.0.1:8000/healthz; do
	i=$((i + 1)); [ $i -lt 300 ] || fail "logsvc-start"; usleep 200000
done
echo "KMODTEST PASS logsvc-start"

# The loads: one busy loop (one core), one process holding MEM_BYTES resident.
sh -c 'echo $$ > /sys/fs/cgroup/e2e-cpu/cgroup.procs; exec sh -c "while :; do :; done"' &
cpu_load=$!
sh -c "echo \$\$ > /sys/fs/cgroup/e2e-mem/cgroup.procs; exec stressmix-stress memory --bytes $MEM_BYTES --duration 0" > /tmp/stress.log 2>&1 &
mem_load=$!

[ -e /proc/stressmix ] && fail "module-already-loaded"

# load_module PHASE: the kmod-load init container's command; it must exit 0 with one line.
load_module() {
	out=$(stressmix-agent load-module --path "$K/stressmix.ko" --status-file "$K/status" \
		--build-failure "$K/build-failure" --proc-name stressmix)
	rc=$?
	echo "E2E-LOAD $1 rc=$rc lines=$(echo "$out" | wc -l) $out"
	echo "E2E-STATUS $1 $(cat "$K/status")"
}

# start_agent NODE FLAG...: the agent container, shipping as NODE.
start_agent() {
	node=$1
	shift
	stressmix-agent --no-kubernetes --node-name "$node" --interval 1s \
		--logsvc-url http://127.0.0.1:8000 --metrics-addr 127.0.0.1:9100 --log-format json "$@" \
		> "/tmp/agent-$node.log" 2>&1 &
	agent=$!
	i=0
	until wget -q -O "/tmp/metrics-$node" http://127.0.0.1:9100/metrics; do
		i=$((i + 1)); [ $i -lt 300 ] || { cat "/tmp/agent-$node.log"; fail "agent-start-$node"; }; usleep 200000
	done
}

# stop_agent: print its metrics, then SIGTERM (it flushes what is buffered).
stop_agent() {
	wget -q -O "/tmp/metrics-$node" http://127.0.0.1:9100/metrics || fail "agent-metrics-$node"
	grep '^stressmix_agent_source' "/tmp/metrics-$node" | sed "s/^/E2E-METRIC $node /"
	kill -TERM $agent
	wait $agent
	echo "E2E-GUEST agent_exit $node=$?"
}

# (a) The build failed: no module, the agent reads cgroupfs and says why.
cp /bin/e2e-build-failure "$K/build-failure"
load_module fallback
[ -e /proc/stressmix ] && fail "no-module-after-a-failed-build"
start_agent guest-fallback --module-status-file "$K/status"
sleep 8
stop_agent

# (b) The build succeeded: load-module loads kmod-build's .ko, the agent reads the module.
rm -f "$K/build-failure"
cp /bin/e2e-built.ko "$K/stressmix.ko"
load_module module
[ -e /proc/stressmix ] || fail "load-module-loads-the-module"
echo "KMODTEST PASS load-module-loads-the-module"
echo "E2E-GUEST srcversion_loaded=$(cat /sys/module/stressmix/srcversion)"
start_agent guest-module --module-status-file "$K/status"
sleep 20
echo "E2E-GUEST mem_current=$(cat /sys/fs/cgroup/e2e-mem/memory.current)"
echo "E2E-GUEST cpu_usage_usec=$(grep usage_usec /sys/fs/cgroup/e2e-cpu/cpu.stat)"
stop_agent

# The same build again (a restarted pod): already loaded.
load_module again

# (c) Another build is loaded than the .ko: stale-module, reported; the agent keeps reading the
# loaded module (its schema is supported) and every batch says why.
cp /bin/e2e-stale.ko "$K/stressmix.ko"
load_module stale
start_agent guest-stale --module-status-file "$K/status"
sleep 5
stop_agent

# (d) Mode none with a module path: the agent's own loader, and its unload on exit.
rmmod stressmix || fail "rmmod"
start_agent guest-own --source module --module-path /stressmix.ko --unload-on-exit
[ -e /proc/stressmix ] || { cat /tmp/agent-guest-own.log; fail "agent-loads-module"; }
echo "KMODTEST PASS agent-loads-module"
sleep 4
stop_agent
[ -e /proc/stressmix ] && fail "agent-unloads-its-module"
echo "KMODTEST PASS agent-unloads-its-module"

kill $cpu_load $mem_load
# What the log service serves for the module phase: every stored reading of the last 10 minutes,
# one row per second.
now_ms=$(($(date +%s) * 1000 + 1000))
wget -q -O /tmp/containers.json \
	"http://127.0.0.1:8000/api/v1/query/containers?from=$((now_ms - 600000))&to=$now_ms&step_ms=1000&node=guest-module" \
	|| fail "query-readings"
kmod-send-file containers.json /tmp/containers.json
kill -TERM $logsvc
wait $logsvc
echo "E2E-GUEST logsvc_exit=$?"
for f in /tmp/readings.db /tmp/readings.db-wal; do
	[ -s "$f" ] && kmod-send-file "$(basename "$f")" "$f"
done
for n in fallback module stale own; do
	kmod-send-file "agent-guest-$n.log" "/tmp/agent-guest-$n.log"
done
exit 0
