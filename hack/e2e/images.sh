#!/usr/bin/env bash
# The two image archives the lab node imports, built here with buildah (hack/images/build.sh on the
# stand-in bases, in the storage `make test-images` uses): prints their paths on one line.
#   hack/e2e/images.sh          build (warm: seconds, nothing changed) and print the archives
#   hack/e2e/images.sh --tag    print the tag only
# STRESSMIX_E2E_REUSE_ARCHIVES=1: no build when both archives exist.
set -euo pipefail
# shellcheck source=hack/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../images/lib.sh"
cd "$images_root"
tag=$(workspace_version)
if [[ ${1:-} == --tag ]]; then
	echo "$tag"
	exit 0
fi
archives=$images_cache/archives
runtime=$archives/$(basename "$images_runtime_repo")-$tag.tar
builder=$archives/$(basename "$images_builder_repo")-$tag.tar
if [[ ${STRESSMIX_E2E_REUSE_ARCHIVES:-0} != 1 || ! -s $runtime || ! -s $builder ]]; then
	# shellcheck source=hack/lib/apt.sh
	source hack/lib/apt.sh
	apt_install buildah mmdebstrap skopeo
	hack/images/standins.sh "$images_test_storage" "$images_runtime_dockerfile" "$images_builder_dockerfile" >&2
	export_buildah_tmpdir
	hack/images/build.sh --tool buildah --pull never --storage "$images_test_storage" --tag "$tag" --out "$archives" >&2 ||
		die "the image build failed"
fi
[[ -s $runtime && -s $builder ]] || die "no archives $runtime $builder after the build"
echo "$runtime $builder"
