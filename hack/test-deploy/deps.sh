#!/usr/bin/env bash
# Installs what the deployment tests need beyond the test control plane (hack/testenv builds
# kubectl and helm): shellcheck, and PyYAML for Debian's own python3 (/usr/bin/python3, which reads
# the kind config), from Debian. Idempotent; quiet when everything is present.
set -euo pipefail
missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
if ((${#missing[@]})); then
	echo "[test-deploy deps] installing ${missing[*]}" >&2
	if [[ $(id -u) -ne 0 ]]; then
		echo "[test-deploy deps] error: need root to apt-get install ${missing[*]}" >&2
		exit 1
	fi
	# Other jobs may hold the dpkg lock: wait for it (DPkg::Lock::Timeout).
	# An apt index older than a day may point at removed package versions.
	if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n1) ]]; then
		apt-get -o DPkg::Lock::Timeout=600 update -qq
	fi
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
