#!/usr/bin/env bash
# Installs what the kmod build and qemu harness need, from Debian's packages, idempotently.
#   kmod/test/deps.sh tools          # gcc, make, sparse, qemu, busybox-static, cpio, kmod
#   kmod/test/deps.sh kernel KVER    # linux-headers-KVER and linux-image-KVER (the qemu guest kernel)
#   kmod/test/deps.sh default-kvers  # prints the default kernel releases: bookworm 6.1, backports 6.12
# bookworm-backports is added as an apt source with a low pin priority (100: never upgrades anything
# by itself; only packages asked for by name come from it).
set -euo pipefail

BACKPORTS_LIST=/etc/apt/sources.list.d/stressmix-bookworm-backports.list
BACKPORTS_PIN=/etc/apt/preferences.d/stressmix-bookworm-backports
APT_STAMP=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}/kmod/apt-updated

log() { echo "kmod-deps: $*" >&2; }

# shellcheck source=hack/lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../hack/lib/apt.sh"

ensure_backports_source() {
	if [[ ! -f $BACKPORTS_LIST ]]; then
		log "adding bookworm-backports apt source (pin priority 100)"
		echo "deb http://deb.debian.org/debian bookworm-backports main" | as_root tee "$BACKPORTS_LIST" >/dev/null
		printf 'Package: *\nPin: release n=bookworm-backports\nPin-Priority: 100\n' |
			as_root tee "$BACKPORTS_PIN" >/dev/null
		rm -f "$APT_STAMP"
	fi
}

apt_update_once() {
	if [[ ! -f $APT_STAMP ]]; then
		log "apt-get update"
		as_root apt-get update -q >&2
		mkdir -p "$(dirname "$APT_STAMP")"
		touch "$APT_STAMP"
	fi
}

# install_with_backports PKG...: kernel packages from backports need their dependencies from there too.
install_with_backports() {
	ensure_backports_source
	apt_update_once
	apt_install --release bookworm-backports "$@"
}

tools() {
	install_with_backports gcc make libc6-dev bc flex bison libelf-dev sparse qemu-system-x86 busybox-static \
		cpio kmod zstd xz-utils
}

kernel() {
	local kver=$1
	install_with_backports "linux-headers-$kver" "linux-image-$kver"
	[[ -f /boot/vmlinuz-$kver ]] || { log "no /boot/vmlinuz-$kver after install"; exit 1; }
	[[ -d /usr/src/linux-headers-$kver ]] || { log "no headers for $kver after install"; exit 1; }
}

# The ABI names the meta packages point to: bookworm's 6.1 and bookworm-backports' 6.12.
default_kvers() {
	ensure_backports_source
	apt_update_once
	local k61 k612
	# The candidate (bookworm or bookworm-security; backports is pinned below them).
	k61=$(apt-cache depends linux-headers-amd64 2>/dev/null |
		sed -n 's/.*Depends: linux-headers-\(6\.1\.[0-9.-]*-amd64\)$/\1/p' | head -n1)
	k612=$(apt-cache madison linux-headers-amd64 | awk -F'|' '/bookworm-backports/ {gsub(/ /,"",$2); print $2; exit}')
	if [[ -n $k612 ]]; then
		k612=$(apt-cache show "linux-headers-amd64=$k612" |
			sed -n 's/^Depends: .*linux-headers-\(6\.12\.[0-9.+~a-z-]*-amd64\).*/\1/p' | head -n1)
	fi
	[[ -n $k61 && -n $k612 ]] || { log "cannot resolve default kernels (6.1='$k61' 6.12='$k612')"; exit 1; }
	echo "$k61 $k612"
}

case ${1:-} in
tools) tools ;;
kernel) kernel "${2:?KVER}" ;;
default-kvers) default_kvers ;;
*) echo "usage: $0 tools | kernel KVER | default-kvers" >&2; exit 2 ;;
esac
