# Container images: `make images` builds stressmix/stressmix and stressmix/kmod-builder (docker when
# it answers, else buildah); `make test-images` builds them here with buildah on stand-in base
# images and checks what users rely on (hack/images/test.sh). After 30-kmod.mk: the kmod-builder
# check builds against the kernel headers that test-kmod installs.
.PHONY: images test-images
TEST_TARGETS += test-images

# IMAGES_ARCHIVE_DIR=DIR also writes docker-archive tarballs there; IMAGES_ARGS: more options of
# hack/images/build.sh (--tool, --tag, --content-tag, ...).
IMAGES_ARCHIVE_DIR ?=
IMAGES_ARGS ?=

images:
	hack/images/build.sh $(if $(IMAGES_ARCHIVE_DIR),--out $(IMAGES_ARCHIVE_DIR)) $(IMAGES_ARGS)

test-images:
	hack/images/test.sh
