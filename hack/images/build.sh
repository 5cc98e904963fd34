#!/usr/bin/env bash
# Builds the two stressmix images from the repository root (`make images`):
#   stressmix/stressmix:<tag>     from images/Dockerfile (every Rust binary, distroless, uid 65532)
#   stressmix/kmod-builder:<tag>  from images/kmod-builder.Dockerfile (the kmod-build init container)
# with Docker (BuildKit) when `docker info` answers, else with buildah.
#
#   hack/images/build.sh [--tool auto|docker|buildah] [--tag TAG | --content-tag] [--out DIR]
#                        [--pull POLICY] [--storage DIR]
#   hack/images/build.sh --print-tag
#
#   --tag TAG       default: the workspace version (Cargo.toml [workspace.package] version)
#   --content-tag   tag <version>-<hash of both Dockerfiles, their ignore files and every file of
#                   their build contexts>: any change of what goes into an image gives a new tag
#   --print-tag     print that content tag and exit (needs only python3; builds nothing)
#   --out DIR       also write each image as a docker-archive tarball, DIR/<image>-<tag>.tar
#   --pull POLICY   buildah's --pull (never: use only images already in the storage)
#   --storage DIR   buildah storage (root and runroot under DIR) instead of buildah's default
#
# The archives are docker-archive (`docker save` format) on purpose: their manifest.json names the
# image (RepoTags), so `kind load image-archive`, `ctr -n k8s.io images import` and `docker load`
# all import it as docker.io/stressmix/<image>:<tag>, the name a pod's `image: stressmix/...`
# resolves to. An oci-archive from buildah carries only the tag in its index annotation, and ctr
# would import it under that bare tag unless told a base name.
set -euo pipefail
# shellcheck source=hack/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tool=auto tag='' content_tag=false out='' pull='' storage=''
while [[ $# -gt 0 ]]; do
	case $1 in
	--tool) tool=${2:?}; shift 2 ;;
	--tag) tag=${2:?}; shift 2 ;;
	--content-tag) content_tag=true; shift ;;
	--print-tag)
		exec python3 "$images_root/hack/images/context.py" tag \
			"$images_runtime_dockerfile" "$images_builder_dockerfile" ;;
	--out) out=${2:?}; shift 2 ;;
	--pull) pull=${2:?}; shift 2 ;;
	--storage) storage=${2:?}; shift 2 ;;
	-h | --help) sed -n '2,25p' "$0"; exit 0 ;;
	*) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
cd "$images_root"

if [[ -z $tag ]]; then
	if $content_tag; then
		tag=$(python3 hack/images/context.py tag "$images_runtime_dockerfile" "$images_builder_dockerfile")
	else
		tag=$(workspace_version)
	fi
fi
if [[ $tool == auto ]]; then
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then tool=docker; else tool=buildah; fi
fi
case $tool in
docker) docker buildx version >/dev/null 2>&1 || die "docker has no buildx (BuildKit), which RUN --mount needs" ;;
buildah) apt_install buildah skopeo ;;
*) die "--tool must be auto, docker or buildah" ;;
esac
[[ -z $out ]] || mkdir -p "$out"
[[ $tool == buildah ]] && export_buildah_tmpdir
# The machine is shared: the release build inside the image yields to everything else.
renice -n 10 $$ >/dev/null

# build_one DOCKERFILE REPO: builds REPO:$tag, prints its build time and size, writes its archive.
build_one() {
	local df=$1 ref=$2:$tag start secs size archive
	start=$(date +%s.%N)
	log "building $ref from $df with $tool"
	if [[ $tool == docker ]]; then
		# buildx (BuildKit) reads <Dockerfile>.dockerignore and runs the RUN --mount=type=cache
		# steps. No provenance/SBOM attestations: the image stays one plain manifest, which
		# `docker save` and `kind load` handle under Docker's containerd image store (kind#3795).
		docker buildx build --load --provenance=false --sbom=false -f "$df" -t "$ref" .
	else
		# buildah (1.28 in bookworm) also reads <Dockerfile>.dockerignore next to the Dockerfile;
		# passing it explicitly keeps that true for any buildah. chroot isolation: the host's
		# hybrid cgroup hierarchy is refused by crun/runc, and a build needs no more.
		local args=(bud --isolation=chroot --layers -f "$df" -t "$ref")
		[[ -f $df.dockerignore ]] && args+=(--ignorefile "$df.dockerignore")
		[[ -n $pull ]] && args+=("--pull=$pull")
		buildah_at "$storage" "${args[@]}" .
	fi
	secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
	if [[ $tool == docker ]]; then
		size=$(docker image inspect --format '{{.Size}}' "$ref" | awk '{ printf "%.1f MB", $1 / 1e6 }')
	else
		size=$(buildah_at "$storage" images --format '{{.Size}}' "$ref" | head -n1)
	fi
	log "built $ref in ${secs} s, image size $size"
	if [[ -n $out ]]; then
		archive=$out/$(basename "$2")-$tag.tar
		rm -f "$archive"
		if [[ $tool == docker ]]; then
			# One platform only (Docker >= 28 can say so): an index naming absent platforms'
			# blobs is what `ctr import` fails on.
			local platform=()
			docker save --help 2>/dev/null | grep -q -- '--platform' &&
				platform=(--platform "$(docker version --format '{{.Server.Os}}/{{.Server.Arch}}')")
			docker save "${platform[@]}" -o "$archive" "$ref"
		else
			# skopeo, not `buildah push`: buildah adds the storage's own name
			# (localhost/stressmix/...) as a second RepoTag, which ctr would import too.
			local src spec=''
			src=$(buildah_at "$storage" images --format '{{.Name}}:{{.Tag}}' "$ref" | head -n1)
			[[ -z $storage ]] || spec="[overlay@$storage/root+$storage/runroot]"
			skopeo copy --quiet "containers-storage:$spec$src" "docker-archive:$archive:$ref"
		fi
		log "wrote $archive ($(du -h "$archive" | cut -f1))"
	fi
}

build_one "$images_runtime_dockerfile" "$images_runtime_repo"
build_one "$images_builder_dockerfile" "$images_builder_repo"
