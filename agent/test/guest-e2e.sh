#!/bin/sh
# Runs inside the qemu guest (kmod/test/lib.sh initramfs): the log service and the agent on the
# guest's loopback, the agent loading /stressmix.ko itself, a CPU-bound cgroup and a memory cgroup.
# Sends the log service's database (and the agent's log) back over the serial console.
set -u
MEM_BYTES=67108864
fail() { echo "KMODTEST FAIL $1"; exit 1; }

for c in cpu memory; do
	echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || fail "enable-controller-$c"
done
echo "+io" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || echo "E2E-GUEST no io controller"
mkdir -p /sys/fs/cgroup/e2e-cpu /sys/fs/cgroup/e2e-mem /sys/fs/cgroup/e2e-services

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
stressmix-agent --source module --module-path /stressmix.ko --unload-on-exit --no-kubernetes \
	--node-name qemu-guest --interval 1s --logsvc-url http://127.0.0.1:8000 \
	--metrics-addr 127.0.0.1:9100 --log-format json > /tmp/agent.log 2>&1 &
agent=$!
i=0
until [ -e /proc/stressmix ]; do
	i=$((i + 1)); [ $i -lt 300 ] || { cat /tmp/agent.log; fail "agent-loads-module"; }; usleep 200000
done
echo "KMODTEST PASS agent-loads-module"

sleep 20
wget -q -O /tmp/metrics http://127.0.0.1:9100/metrics || fail "agent-metrics"
grep '^stressmix_agent_' /tmp/metrics | sed 's/^/E2E-METRIC /'
echo "E2E-GUEST mem_current=$(cat /sys/fs/cgroup/e2e-mem/memory.current)"
echo "E2E-GUEST cpu_usage_usec=$(grep usage_usec /sys/fs/cgroup/e2e-cpu/cpu.stat)"

kill -TERM $agent
wait $agent
echo "E2E-GUEST agent_exit=$?"
[ -e /proc/stressmix ] && fail "agent-unloads-its-module"
echo "KMODTEST PASS agent-unloads-its-module"
kill $cpu_load $mem_load
# What the log service serves: every stored reading of the last 10 minutes, one row per second.
now_ms=$(($(date +%s) * 1000 + 1000))
wget -q -O /tmp/containers.json \
	"http://127.0.0.1:8000/api/v1/query/containers?from=$((now_ms - 600000))&to=$now_ms&step_ms=1000" \
	|| fail "query-readings"
kmod-send-file containers.json /tmp/containers.json
kill -TERM $logsvc
wait $logsvc
echo "E2E-GUEST logsvc_exit=$?"
for f in /tmp/readings.db /tmp/readings.db-wal; do
	[ -s "$f" ] && kmod-send-file "$(basename "$f")" "$f"
done
kmod-send-file agent.log /tmp/agent.log
exit 0
