# shellcheck shell=bash
# Shared helpers of the deployment tests (sourced by hack/test-deploy/*.sh, never executed).
# Every assertion goes through pass/fail so the run ends with one "N passed, N failed" line.

TD_PASSED=${TD_PASSED:-0}
TD_FAILED=${TD_FAILED:-0}
TD_FAILURES=()

td_log() { printf '[test-deploy %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

pass() {
	TD_PASSED=$((TD_PASSED + 1))
	printf '  ok    %s\n' "$*"
}

fail() {
	TD_FAILED=$((TD_FAILED + 1))
	TD_FAILURES+=("$*")
	printf '  FAIL  %s\n' "$*"
}

# A prerequisite is missing: stop now (the remaining checks would only cascade).
abort() {
	td_log "error: $*"
	fail "$*"
	td_summary
	exit 1
}

td_summary() {
	local f
	if ((TD_FAILED)); then
		echo "test-deploy failures:"
		for f in "${TD_FAILURES[@]}"; do echo "  - $f"; done
	fi
	echo "test-deploy: ${TD_PASSED} passed, ${TD_FAILED} failed"
}

# expect_refused DESCRIPTION REGEX CMD...: the command fails and its output matches REGEX (grep -E).
expect_refused() {
	local desc=$1 needle=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		fail "$desc: accepted, expected a refusal containing '$needle'"
	elif grep -qE -- "$needle" <<<"$out"; then
		pass "$desc (refused: $(grep -E -m1 -- "$needle" <<<"$out" | sed 's/^[[:space:]]*//' | cut -c1-160))"
	else
		fail "$desc: refused without '$needle' in the message: $(tr '\n' ' ' <<<"$out" | cut -c1-400)"
	fi
}

# wait_for SECONDS DESCRIPTION CMD...: retry CMD every second until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1)) desc=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 1
	done
	td_log "$desc: ok after waiting"
}

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
