# shellcheck shell=bash
# The one installer of Debian packages for the project's scripts (sourced, never executed).
#   apt_install [--release SUITE] PKG...
# Idempotent: only packages not yet installed are asked for. apt's index is refreshed when it does not
# know one of them or is older than a day (an old index may point at removed versions). Another apt
# run's lock is waited for, because test parts install at the same time. With --release, that target
# release (e.g. bookworm-backports) is tried first, then the default.

as_root() {
	if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_install() {
	local release='' missing=() p
	if [[ ${1:-} == --release ]]; then
		release=${2:?apt_install --release needs a suite}
		shift 2
	fi
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	command -v apt-get >/dev/null || { echo "[apt] error: missing ${missing[*]} and no apt-get" >&2; return 1; }
	echo "[apt] installing ${missing[*]}" >&2
	if ! apt-cache show "${missing[@]}" >/dev/null 2>&1 ||
		[[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n1) ]]; then
		as_root apt-get -o DPkg::Lock::Timeout=600 update -q >&2
	fi
	local install=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q
		--no-install-recommends)
	if [[ -n $release ]] && as_root "${install[@]}" -t "$release" "${missing[@]}" >&2; then
		return 0
	fi
	as_root "${install[@]}" "${missing[@]}" >&2
}
