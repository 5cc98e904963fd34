# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are for the scripts that source this file
# Shared by hack/images/*.sh (sourced): paths, logging, the tools from Debian, the buildah storage.

images_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
images_cache=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}/images
# The two images: name and Dockerfile (the build context is always the repository root).
images_runtime_dockerfile=images/Dockerfile
images_builder_dockerfile=images/kmod-builder.Dockerfile
images_runtime_repo=stressmix/stressmix
images_builder_repo=stressmix/kmod-builder

log() { printf '[images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# CI=true turns every missing tool into a failure; elsewhere the caller may choose to skip.
is_ci() { [[ ${CI:-} == true ]]; }

# shellcheck source=hack/lib/apt.sh
source "$images_root/hack/lib/apt.sh"

# The workspace version ([workspace.package] version in Cargo.toml): the images' default tag.
workspace_version() {
	local v
	v=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$images_root/Cargo.toml")
	[[ -n $v ]] || die "cannot read [workspace.package] version from Cargo.toml"
	printf '%s\n' "$v"
}

# The test's buildah storage: its own root under the cache, because it holds the stand-in base
# images under the real images' names, which must never shadow anything in a user's storage.
images_test_storage=$images_cache/storage

# buildah_at STORAGE ARGS...: buildah on STORAGE ("" = buildah's default storage).
buildah_at() {
	local storage=$1
	shift
	if [[ -n $storage ]]; then
		buildah --root "$storage/root" --runroot "$storage/runroot" --storage-driver overlay "$@"
	else
		buildah "$@"
	fi
}

# buildah keeps RUN --mount=type=cache directories in $TMPDIR/buildah-cache-<uid> (TMPDIR
# defaults to /var/tmp); pointing TMPDIR into the cache keeps the cargo registry and target
# directory of the image builds with everything else the project caches.
export_buildah_tmpdir() {
	export TMPDIR=$images_cache/tmp
	mkdir -p "$TMPDIR"
}
