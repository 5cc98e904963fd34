#!/usr/bin/env bash
# kmod/test/checkpatch.sh: the kernel's checkpatch.pl (from Debian's linux-source-6.1, cached) over
# the module's sources. Not part of `make test` (a 140 MB download); run by `make checkpatch-kmod`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}/kmod/checkpatch
if [[ ! -x $cache/scripts/checkpatch.pl ]]; then
	mkdir -p "$cache/dl"
	(cd "$cache/dl" && apt-get download linux-source-6.1 >&2)
	deb=$(ls "$cache"/dl/linux-source-6.1_*.deb | head -n1)
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache/dl" --wildcards '*/linux-source-6.1.tar.xz'
	tar -xJf "$cache"/dl/usr/src/linux-source-6.1.tar.xz -C "$cache" --strip-components=1 \
		linux-source-6.1/scripts/checkpatch.pl linux-source-6.1/scripts/spelling.txt \
		linux-source-6.1/scripts/const_structs.checkpatch
	rm -rf "$cache/dl"
fi
cd "$repo/kmod"
"$cache/scripts/checkpatch.pl" --no-tree --strict --max-line-length=100 \
	-f main.c snapshot.c format.c stressmix.h
