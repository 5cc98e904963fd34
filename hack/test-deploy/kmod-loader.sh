# shellcheck shell=bash
# The agent's init-container script (images/kmod-build-and-load.sh) outside a container: its
# decisions and error messages, never an actual load (every case stops before insmod or make).
# Sourced by run.sh (needs lib.sh).

kmod_loader_checks() {
	local script=images/kmod-build-and-load.sh tmp out rc
	td_log "kmod loader script"
	tmp=$(mktemp -d)
	# A /proc entry that exists: "already loaded", nothing built.
	if out=$(PROC_NAME=self "$script" build 2>&1) && grep -q 'already exists' <<<"$out"; then
		pass "kmod loader: /proc/<name> present means loaded, build skipped"
	else
		fail "kmod loader: existing /proc entry not treated as loaded: $out"
	fi
	expect_refused "kmod loader: missing headers named" "no kernel headers for test-kver at $tmp/modules/test-kver/build" \
		env PROC_NAME=stressmix-test-absent KVER=test-kver MODULES_DIR="$tmp/modules" "$script" build
	mkdir -p "$tmp/modules/test-kver/build"
	expect_refused "kmod loader: headers without a build tree named" "is not a kernel build tree" \
		env PROC_NAME=stressmix-test-absent KVER=test-kver MODULES_DIR="$tmp/modules" "$script" build
	expect_refused "kmod loader: missing prebuilt module named" "module file $tmp/prebuilt/stressmix.ko not found" \
		env PROC_NAME=stressmix-test-absent "$script" prebuilt "$tmp/prebuilt"
	mkdir -p "$tmp/prebuilt" && : >"$tmp/prebuilt/stressmix.ko"
	echo 'none [integrity] confidentiality' >"$tmp/lockdown"
	expect_refused "kmod loader: kernel lockdown reported before insmod" "kernel lockdown is active" \
		env PROC_NAME=stressmix-test-absent LOCKDOWN_FILE="$tmp/lockdown" "$script" prebuilt "$tmp/prebuilt"
	rc=0
	"$script" sideways >/dev/null 2>&1 || rc=$?
	if ((rc == 2)); then pass "kmod loader: unknown mode exits 2 (usage)"; else fail "kmod loader: unknown mode exit $rc, want 2"; fi
	rm -rf "$tmp"
}
