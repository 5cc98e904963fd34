#!/usr/bin/env bash
# `make test-images`: builds both images from their own Dockerfiles with buildah (stand-ins for
# the base images that cannot be pulled here, see standins.sh) and checks what users rely on:
#   0. context drift, before any build: images/Dockerfile's context (as its ignore file filters
#      it) loads the Cargo workspace; the kmod-builder's holds kmod/'s sources and its entrypoint;
#   1. the runtime image, run as its user 65532: `stressmix-stress cpu --duration 1` prints one JSON
#      summary (kind cpu); `--help` of the operator, the agent and the log service; no shell;
#   2. the kmod-builder image's entrypoint (the module init contract, `kmod-build OUTDIR`) against
#      Debian's 6.1 and 6.12 headers mounted as a node mounts them: a stressmix.ko whose vermagic
#      starts with KVER; a KVER without headers -> `no-headers:`; headers built by a gcc the image
#      lacks -> `compiler-mismatch:`;
#   3. the docker-archive tarballs name the images as kubelet looks them up, and 4. a containerd
#      (Debian's, started for the test) imports and unpacks them into its k8s.io namespace.
# Prints build times (cold: no cargo cache yet; warm) and image sizes. Runs as root (rootful
# buildah, apt); under CI=true anything missing is a failure, never a skip.
set -euo pipefail
# shellcheck source=hack/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$images_root"

storage=$images_test_storage
archives=$images_cache/archives
checks=0

pass() { checks=$((checks + 1)); log "ok: $*"; }
fail() { die "FAILED: $*"; }

if [[ $(id -u) -ne 0 ]]; then
	is_ci && fail "test-images needs root (rootful buildah, mmdebstrap, apt)"
	log "SKIP: test-images needs root (rootful buildah, mmdebstrap, apt); CI runs it as root"
	exit 0
fi

# 0. Context drift, first: a broken context would otherwise show up minutes into a build.
python3 hack/images/context.py check "$images_runtime_dockerfile" "$images_builder_dockerfile" ||
	fail "a build context lacks what its build needs (see above)"
pass "build contexts"

apt_install buildah mmdebstrap skopeo containerd kmod python3
read -r -a kvers <<<"$(kmod/test/deps.sh default-kvers)"
[[ ${#kvers[@]} -eq 2 ]] || fail "kmod/test/deps.sh default-kvers gave '${kvers[*]}'"
for k in "${kvers[@]}"; do kmod/test/deps.sh kernel "$k"; done

hack/images/standins.sh "$storage" "$images_runtime_dockerfile" "$images_builder_dockerfile"

# Every source change leaves the previous build's layers (~80 MB) behind, untagged. Past 20 of them,
# drop them all: the next build then reruns its cargo step on the warm cache mount (seconds).
dangling=$(buildah_at "$storage" images --filter dangling=true --quiet | wc -l)
if ((dangling > 20)); then
	log "pruning $dangling untagged images from $storage"
	buildah_at "$storage" rmi --prune >/dev/null
fi

export_buildah_tmpdir
cargo_cache=$TMPDIR/buildah-cache
temperature=warm
[[ -n $(ls -A "$cargo_cache" 2>/dev/null) ]] || temperature=cold
tag=$(workspace_version)
buildlog=$images_cache/build.log
start=$(date +%s)
hack/images/build.sh --tool buildah --pull never --storage "$storage" --tag "$tag" --out "$archives" 2>&1 |
	tee "$buildlog" | grep --line-buffered -E '^\[images\]|^STEP|^error|^Error' >&2 ||
	fail "image build failed (full log: $buildlog)"
build_secs=$(($(date +%s) - start))
runtime=$images_runtime_repo:$tag
builder=$images_builder_repo:$tag

workdir=$(mktemp -d "$images_cache/test.XXXXXX")
containers=()
cleanup() {
	local c
	for c in "${containers[@]}"; do buildah_at "$storage" rm "$c" >/dev/null 2>&1 || true; done
	rm -rf "$workdir"
}
trap cleanup EXIT

# new_container IMAGE: a working container of IMAGE in $container (not a subshell's output: the
# id must reach `containers`, which the exit trap removes).
new_container() {
	container=$(buildah_at "$storage" from --pull=never --quiet "$1")
	containers+=("$container")
}

# 1. The runtime image.
user=$(buildah_at "$storage" inspect --type image --format '{{.OCIv1.Config.User}}' "$runtime")
[[ $user == 65532:65532 ]] || fail "$runtime runs as '$user', not 65532:65532"
new_container "$runtime"
rt=$container
run_rt() { buildah_at "$storage" run --isolation chroot --user 65532:65532 "$rt" -- "$@"; }
summary=$(run_rt /usr/local/bin/stressmix-stress cpu --duration 1) ||
	fail "stressmix-stress cpu --duration 1 exited non-zero"
[[ $(wc -l <<<"$summary") -eq 1 ]] || fail "stressmix-stress printed $(wc -l <<<"$summary") lines, not one: $summary"
python3 -c 'import json, sys; d = json.loads(sys.argv[1]); sys.exit(0 if d.get("kind") == "cpu" else 1)' "$summary" ||
	fail "stressmix-stress's summary is not a JSON object of kind cpu: $summary"
pass "runtime: stressmix-stress cpu --duration 1 as 65532 -> $summary"
for bin in stressmix-operator stressmix-agent stressmix-logsvc; do
	run_rt "/usr/local/bin/$bin" --help >/dev/null || fail "$bin --help exited non-zero in $runtime"
	pass "runtime: $bin --help as 65532"
done
mnt=$(buildah_at "$storage" mount "$rt")
for sh in bin/sh bin/bash usr/bin/sh usr/bin/bash usr/bin/dash; do
	[[ ! -e $mnt/$sh && ! -L $mnt/$sh ]] || fail "$runtime holds a shell (/$sh): its distroless base is not what users get"
done
buildah_at "$storage" umount "$rt" >/dev/null
pass "runtime: no shell in the image"

# 2. The kmod-builder image, through its entrypoint, as the agent's init container runs it.
read -r -a entrypoint <<<"$(buildah_at "$storage" inspect --type image \
	--format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}' "$builder")"
[[ ${#entrypoint[@]} -gt 0 ]] || fail "$builder has no entrypoint"
new_container "$builder"
kb=$container
# kmod_build OUTDIR KVER [EXTRA buildah run ARGS...]: the entrypoint's stdout; OUTDIR is /out inside.
kmod_build() {
	local outdir=$1 kver=$2
	shift 2
	mkdir -p "$outdir"
	buildah_at "$storage" run --isolation chroot \
		-v /lib/modules:/lib/modules:ro -v /usr/src:/usr/src:ro -v /usr/lib:/host/usr/lib:ro \
		-v "$outdir:/out" --env "KVER=$kver" "$@" "$kb" -- "${entrypoint[@]}" /out 2>"$outdir.stderr" ||
		fail "kmod-build exited non-zero for KVER=$kver (stderr: $outdir.stderr): the contract says exit 0"
}
for k in "${kvers[@]}"; do
	out=$(kmod_build "$workdir/$k" "$k")
	[[ $out == "kmod-build: built stressmix.ko for $k with "* ]] || fail "kmod-build for $k said: $out ($(tail -n3 "$workdir/$k.stderr"))"
	[[ -f $workdir/$k/stressmix.ko ]] || fail "kmod-build for $k wrote no stressmix.ko"
	vermagic=$(modinfo -F vermagic "$workdir/$k/stressmix.ko")
	[[ $vermagic == "$k "* ]] || fail "stressmix.ko built for $k has vermagic '$vermagic'"
	pass "kmod-builder: $k -> stressmix.ko, vermagic '$vermagic' ($out)"
done

# expect_failure OUTDIR CAUSE: the entrypoint reported CAUSE in OUTDIR/build-failure and wrote no module.
expect_failure() {
	local outdir=$1 cause=$2 out=$3 line
	[[ -f $outdir/build-failure ]] || fail "no build-failure file for the $cause case (said: $out)"
	[[ ! -e $outdir/stressmix.ko ]] || fail "a stressmix.ko next to a build-failure ($cause case)"
	line=$(cat "$outdir/build-failure")
	[[ $(wc -l <"$outdir/build-failure") -eq 1 && $line == "$cause: "* ]] ||
		fail "build-failure of the $cause case is '$line'"
	[[ $out == "kmod-build: cannot build: $line" ]] || fail "kmod-build printed '$out' for the $cause case"
	pass "kmod-builder: $line"
}
out=$(kmod_build "$workdir/none" 0.0.0-stressmix-no-such-kernel)
expect_failure "$workdir/none" no-headers "$out"

# A copy of the 6.1 build tree built by gcc 11, which the image lacks, as MODULES_DIR/<KVER>/build.
k61=${kvers[0]}
fake=$workdir/fake-node
tree=$(readlink -f "/lib/modules/$k61/build")
mkdir -p "$fake/src" "$fake/modules/$k61"
cp -a "$tree" "$fake/src/"
tree_copy=$fake/src/$(basename "$tree")
# Its relative links (scripts, tools -> ../../lib/linux-kbuild-*) made absolute, as in /usr/src.
for l in "$tree_copy"/*; do
	[[ -L $l && $(readlink "$l") != /* ]] || continue
	ln -sfn "$(readlink -f "$tree/$(basename "$l")")" "$l"
done
# Both ways a tree names its compiler (the text, and GCC_VERSION=MMmmpp) say gcc 11.3.0.
grep -rlE 'CONFIG_(CC_VERSION_TEXT|GCC_VERSION)' "$tree_copy/.config" "$tree_copy/include" |
	xargs sed -i -E -e 's/(CONFIG_CC_VERSION_TEXT=?[ "]*)[^\\"]*/\1gcc-11 (Debian 11.3.0-12) 11.3.0/' \
		-e 's/(CONFIG_GCC_VERSION[= ])[0-9]+/\1110300/'
grep -q '^CONFIG_CC_VERSION_TEXT=.*gcc-11 ' "$tree_copy/include/config/auto.conf" || fail "could not edit the fake tree's auto.conf"
ln -s "/stressmix-fake-node/src/$(basename "$tree")" "$fake/modules/$k61/build"
out=$(kmod_build "$workdir/mismatch" "$k61" -v "$fake:/stressmix-fake-node:ro" --env MODULES_DIR=/stressmix-fake-node/modules)
expect_failure "$workdir/mismatch" compiler-mismatch "$out"

# 3. The archives: docker-archive, named as a pod's `image: stressmix/...` resolves.
for ref in "$runtime" "$builder"; do
	archive=$archives/$(basename "${ref%%:*}")-$tag.tar
	tags=$(tar -xOf "$archive" manifest.json | python3 -c 'import json, sys; print(" ".join(t for m in json.load(sys.stdin) for t in m["RepoTags"]))')
	[[ $tags == "docker.io/$ref" ]] || fail "$archive names '$tags', not docker.io/$ref"
	pass "archive $archive ($(du -h "$archive" | cut -f1)) holds docker.io/$ref"
done

# 4. What a node does with them: a containerd of its own imports and unpacks both archives into
# the k8s.io namespace (the kubelet's), under the names the pods use.
ctrd=$workdir/containerd
mkdir -p "$ctrd"
printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\n[grpc]\n  address = "%s/sock"\n' \
	"$ctrd" "$ctrd" "$ctrd" >"$ctrd/config.toml"
containerd --config "$ctrd/config.toml" >"$ctrd/log" 2>&1 &
ctrd_pid=$!
trap 'kill "$ctrd_pid" 2>/dev/null; wait "$ctrd_pid" 2>/dev/null; cleanup' EXIT
for _ in $(seq 50); do [[ -S $ctrd/sock ]] && break; sleep 0.2; done
for ref in "$runtime" "$builder"; do
	archive=$archives/$(basename "${ref%%:*}")-$tag.tar
	ctr --address "$ctrd/sock" -n k8s.io images import "$archive" >/dev/null ||
		fail "containerd cannot import $archive (log: $ctrd/log)"
	ctr --address "$ctrd/sock" -n k8s.io images check "name==docker.io/$ref" | grep -q 'complete.* true$' ||
		fail "containerd imported $archive but docker.io/$ref is not complete and unpacked"
	pass "containerd $(containerd --version | awk '{print $3}') imports and unpacks docker.io/$ref"
done

log "build ($temperature cargo cache): ${build_secs} s in all; per image:"
grep -E '^\[images\] built ' "$buildlog" >&2
log "image sizes:"
buildah_at "$storage" images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -v '^<none>' >&2
log "test-images: all $checks checks passed"
