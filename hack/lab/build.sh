# shellcheck shell=bash
# Build (once per version) what the lab node boots: the root file system (mmdebstrap), the guest
# kernel and a busybox initramfs, the node binaries, and the images made here (pause, hello).
# Sourced by hack/lab/lab after common.sh and hack/testenv's build files.

LAB_PACKAGES=(
  # the container runtime and networking a kubelet node needs; bookworm's containerd 1.6 is still
  # accepted by kubelet 1.36 (through its deprecated RuntimeConfig fallback)
  containerd runc containernetworking-plugins iptables conntrack iproute2 socat ethtool
  # an init that reaps (PID 1 is a script otherwise), and what kubelet and the init call
  tini kmod procps util-linux mount e2fsprogs ca-certificates
)

lab_deps() {
  # qemu, busybox-static, kmod, xz and zstd come with the module harness's tools.
  "$LAB_REPO/kmod/test/deps.sh" tools
  apt_install mmdebstrap qemu-utils socat e2fsprogs buildah jq gcc libc6-dev
}

# The guest kernel: bookworm-backports' 6.12, the release the module harness calls default.
lab_kver() {
  local kvers
  kvers=$("$LAB_REPO/kmod/test/deps.sh" default-kvers) || lab_die "cannot resolve the default kernels"
  echo "${kvers#* }"
}

# The directory of the root file system for this recipe and kernel: root.ext4, vmlinuz, boot-modules/.
lab_rootfs_dir() { echo "$LAB_CACHE/rootfs-bookworm-r$LAB_ROOTFS_RECIPE-$1"; }

build_rootfs() {
  local kver=$1 dir
  dir=$(lab_rootfs_dir "$kver")
  [ -s "$dir/root.ext4" ] && [ -s "$dir/vmlinuz" ] && [ -s "$dir/boot-modules/load-order" ] && return 0
  local tree=$dir.tree start=$SECONDS
  rm -rf "$dir" "$tree"
  mkdir -p "$dir"
  local mirror=http://deb.debian.org/debian
  lab_log "rootfs: mmdebstrap bookworm + backports kernel $kver (log: $dir.log)"
  # The kernel image and its headers as a Debian host has them (the module is built against these);
  # the initrd Debian makes is not used (the lab boots its own busybox initramfs).
  # shellcheck disable=SC2016 # "$1" in a hook is the tree, expanded by mmdebstrap's shell
  if ! nice -n 15 mmdebstrap --variant=minbase --mode=root \
    --include="$(IFS=,; echo "${LAB_PACKAGES[*]},linux-image-$kver,linux-headers-$kver")" \
    --customize-hook='rm -f "$1"/boot/initrd.img-*' \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    --customize-hook=': >"$1"/etc/machine-id' \
    bookworm "$tree" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" \
    "deb $mirror bookworm-backports main" >"$dir.log" 2>&1; then
    tail -n 30 "$dir.log" >&2
    rm -rf "$tree"
    lab_die "rootfs: mmdebstrap failed; log $dir.log"
  fi
  lab_log "rootfs: mmdebstrap done in $((SECONDS - start)) s ($(du -sm "$tree" | cut -f1) MB)"
  cp "$tree/boot/vmlinuz-$kver" "$dir/vmlinuz"
  _lab_boot_modules "$tree" "$kver" "$dir/boot-modules"
  local t=$SECONDS
  # Sparse: the free space is for container images and pod data; runs write to a qcow2 overlay.
  nice -n 15 mke2fs -q -t ext4 -L lab-root -d "$tree" "$dir/root.ext4.tmp" "${LAB_DISK_GB}G" ||
    lab_die "rootfs: mke2fs failed"
  mv "$dir/root.ext4.tmp" "$dir/root.ext4"
  lab_log "rootfs: ext4 image in $((SECONDS - t)) s; rootfs built in $((SECONDS - start)) s"
  echo "$((SECONDS - start))" >"$dir/build.seconds"
  du -sm "$tree" | cut -f1 >"$dir/tree.mb"
  rm -rf "$tree"
}

# Modules the initramfs loads before switch_root (disk, ext4, the 9p share), decompressed, in load order.
_lab_boot_modules() {
  local tree=$1 kver=$2 out=$3 ko base
  rm -rf "$out"
  mkdir -p "$out"
  : >"$out/load-order.tmp"
  while read -r _ ko; do
    base=$(basename "$ko"); base=${base%.xz}; base=${base%.zst}
    grep -qx "$base" "$out/load-order.tmp" && continue
    case $ko in
      *.xz) xz -dc "$tree$ko" >"$out/$base" ;;
      *.zst) zstd -qdc "$tree$ko" >"$out/$base" ;;
      *) cp "$tree$ko" "$out/$base" ;;
    esac
    echo "$base" >>"$out/load-order.tmp"
  done < <(for m in virtio_pci virtio_blk ext4 9pnet_virtio 9p; do
    # A built-in module has no insmod line (virtio_pci is built in on 6.12).
    modprobe -d "$tree" -S "$kver" --show-depends "$m" | sed -n "s|^insmod $tree|insmod |p"
  done)
  [ -s "$out/load-order.tmp" ] || lab_die "no boot modules resolved for $kver in $tree"
  mv "$out/load-order.tmp" "$out/load-order"
}

# The initramfs: busybox, the boot modules and hack/lab/guest/initramfs-init. Cheap, so keyed by content.
build_initramfs() {
  local kver=$1 dir key root f
  dir=$(lab_rootfs_dir "$kver")
  key=$(cat "$LAB_REPO/hack/lab/guest/initramfs-init" "$dir/boot-modules/load-order" /bin/busybox | sha256sum | cut -c1-16)
  LAB_INITRAMFS=$dir/initramfs-$key.cpio.gz
  [ -s "$LAB_INITRAMFS" ] && return 0
  root=$(mktemp -d "${TMPDIR:-/tmp}/lab-initramfs.XXXXXX")
  mkdir -p "$root"/{bin,dev,proc,sys,newroot,lib}
  cp /bin/busybox "$root/bin/busybox"
  for f in $(/bin/busybox --list); do [ "$f" = busybox ] || ln -s busybox "$root/bin/$f"; done
  ln -s bin "$root/sbin"
  cp -r "$dir/boot-modules" "$root/lib/modules"
  install -m 755 "$LAB_REPO/hack/lab/guest/initramfs-init" "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$LAB_INITRAMFS.tmp"
  mv "$LAB_INITRAMFS.tmp" "$LAB_INITRAMFS"
  rm -rf "$root"
}

# Images made here with buildah (no registry, no Docker), saved as docker-archive tars for
# `ctr images import` in the guest. The pause image is containerd's sandbox image (guest/containerd.toml).
LAB_PAUSE_IMAGE=stressmix.local/lab/pause:1
LAB_HELLO_IMAGE=stressmix.local/lab/hello:1
LAB_COREDNS_IMAGE=stressmix.local/lab/coredns:1
COREDNS_DIR=$LAB_CACHE/coredns-$COREDNS_VERSION
LAB_IMAGES_DIR=$LAB_CACHE/images

_buildah() {
  nice -n 15 buildah --root "$LAB_CACHE/buildah/root" --runroot "$LAB_CACHE/buildah/runroot" --storage-driver vfs "$@"
}

# _lab_image NAME TAR ENTRYPOINT_JSON FILE:DEST...: a from-scratch image of static files.
_lab_image() {
  local name=$1 tar=$2 entrypoint=$3 ctr spec; shift 3
  ctr=$(_buildah from scratch)
  for spec in "$@"; do _buildah copy --quiet "$ctr" "${spec%%:*}" "${spec#*:}" >/dev/null; done
  _buildah config --entrypoint "$entrypoint" --cmd '[]' "$ctr"
  _buildah commit --quiet --rm "$ctr" "$name" >/dev/null
  rm -f "$tar"
  _buildah push --quiet "$name" "docker-archive:$tar.tmp:$name"
  _buildah rmi "$name" >/dev/null
  mv "$tar.tmp" "$tar"
}

build_images() {
  local src=$LAB_REPO/hack/lab/guest/pause.c key out=$LAB_IMAGES_DIR
  key=$(cat "$src" /bin/busybox "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
  [ "$(cat "$out/key" 2>/dev/null)" = "$key" ] && return 0
  local start=$SECONDS
  rm -rf "$out"
  mkdir -p "$out/work"
  nice -n 15 gcc -static -O2 -Wall -Werror -o "$out/work/pause" "$src" || lab_die "pause: build failed"
  strip "$out/work/pause"
  _lab_image "$LAB_PAUSE_IMAGE" "$out/pause.tar" '["/pause"]' "$out/work/pause:/pause"
  # hello: a busybox sh for the lab's own probes (cgroup paths, DNS, Services).
  _lab_image "$LAB_HELLO_IMAGE" "$out/hello.tar" '["/bin/busybox","sh","-c","while :; do sleep 3600; done"]' \
    "/bin/busybox:/bin/busybox"
  rm -rf "$out/work"
  echo "$key" >"$out/key"
  lab_log "images: pause and hello built in $((SECONDS - start)) s"
}

build_coredns() {
  if [ ! -x "$COREDNS_DIR/coredns" ]; then
    go_env
    mkdir -p "$COREDNS_DIR"
    GOBIN=$COREDNS_DIR _run_build "coredns $COREDNS_VERSION" "$COREDNS_DIR/build.log" \
      nice -n 15 go install -v -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  fi
  [ -s "$COREDNS_DIR/coredns.tar" ] && return 0
  _lab_image "$LAB_COREDNS_IMAGE" "$COREDNS_DIR/coredns.tar" '["/coredns"]' "$COREDNS_DIR/coredns:/coredns"
}

lab_build() {
  local start=$SECONDS kver
  lab_deps
  kver=$(lab_kver)
  build_node_binaries
  build_all
  build_rootfs "$kver"
  build_initramfs "$kver"
  build_images
  [ "$LAB_DNS" = 0 ] || build_coredns
  lab_log "lab built for kernel $kver (this run: $((SECONDS - start)) s)"
}
