#!/usr/bin/env bash
# Installs what the deployment tests need beyond the test control plane (hack/testenv builds
# kubectl and helm): shellcheck, curl, and PyYAML for Debian's own python3 (/usr/bin/python3, which
# reads the kind config), from Debian. Idempotent; quiet when everything is present.
set -euo pipefail
# shellcheck source=hack/lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
apt_install shellcheck curl python3 python3-yaml
