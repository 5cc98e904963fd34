# syntax=docker/dockerfile:1
# stressmix kmod builder: builds kmod/ against the headers of the node it runs on and loads it.
# The headers are not in the image: the agent DaemonSet's init container mounts the node's
# /lib/modules, /usr/src and /usr/lib (for Debian's linux-kbuild-* helpers) read-only, so one image
# serves every node kernel. The compiler must be the one the kernel was built with; Debian
# bookworm's gcc-12 matches Debian's 6.1 and 6.12 (bookworm-backports) kernels.
#
# Build from the repository root:
#   docker build -f images/kmod-builder.Dockerfile -t stressmix/kmod-builder:0.1.0 .

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make kmod libc6-dev libelf1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Not under /usr/src: the init container mounts the node's /usr/src there.
COPY kmod/ /opt/stressmix/kmod/
COPY images/kmod-build-and-load.sh /usr/local/bin/kmod-build-and-load
ENTRYPOINT ["/usr/local/bin/kmod-build-and-load"]
