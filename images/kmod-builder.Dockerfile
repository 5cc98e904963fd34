# syntax=docker/dockerfile:1
# stressmix kmod builder: the agent DaemonSet's kmod-build init container builds kmod/ against the
# headers of the node it runs on (images/kmod-build.sh); loading is the agent's (`load-module`).
# The headers are not in the image: the node's /lib/modules and /usr/src are mounted read-only, and
# its /usr/lib at /host/usr/lib (Debian's headers link to /usr/lib/linux-kbuild-*), so one image
# serves every node kernel for which it has the compiler of the kernel's build, major for major:
#   gcc-12  Debian 12 (bookworm) 6.1 and bookworm-backports 6.12
#   gcc-13  Ubuntu 24.04 6.8
#   gcc-14  Ubuntu 24.04 HWE kernels, Debian 13 (trixie)
# Trixie is the one Debian suite with all three, and its glibc (2.41) also runs the headers' host
# tools (fixdep, modpost, objtool) of Ubuntu 24.04 (linked against 2.39), which bookworm's 2.36 cannot.
# pahole: Debian's 6.12 headers carry vmlinux, so module builds emit BTF and need it.
#
# Build from the repository root:
#   docker build -f images/kmod-builder.Dockerfile -t stressmix/kmod-builder:0.1.0 .

FROM docker.io/library/debian:trixie-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc-12 gcc-13 gcc-14 make libc6-dev pahole kmod bc libelf1t64 libssl3t64 zlib1g \
 && rm -rf /var/lib/apt/lists/*
# Not under /usr/src: the init container mounts the node's /usr/src there.
COPY kmod/ /opt/stressmix/kmod/
COPY images/kmod-build.sh /usr/local/bin/kmod-build
ENTRYPOINT ["/usr/local/bin/kmod-build"]
