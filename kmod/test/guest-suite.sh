#!/bin/sh
# Runs inside the qemu guest (see lib.sh): the checks of the kernel module on this kernel.
kver=$(cat /etc/kver)
fail=0
step() { kmod-step "$@" || fail=1; }

step load insmod /stressmix.ko
step first-read stressmix-kmod-check check-doc /proc/stressmix --min 0
stressmix-kmod-check suite --disk /mnt/disk || fail=1
[ -f /tmp/sample-all.json ] && kmod-send-file "$kver-all" /tmp/sample-all.json
[ -f /tmp/sample-escapes.json ] && kmod-send-file "$kver-escapes" /tmp/sample-escapes.json

# Unload and reload: another name, only container cgroups; then the defaults again.
step unload rmmod stressmix
step gone-after-unload sh -c '! test -e /proc/stressmix'
step reload-containers-only insmod /stressmix.ko proc_name=stressmix_containers containers_only=1
step containers-only-doc stressmix-kmod-check check-doc /proc/stressmix_containers --filter containers --min 5
cat /proc/stressmix_containers >/tmp/sample-containers.json && kmod-send-file "$kver-containers" /tmp/sample-containers.json
step unload-again rmmod stressmix
step reload-bounded insmod /stressmix.ko max_cgroups=3
step bounded-doc-says-truncated stressmix-kmod-check check-doc /proc/stressmix --min 3 --truncated-at 3
step unload-bounded rmmod stressmix
step reload-default insmod /stressmix.ko
step read-after-reload stressmix-kmod-check check-doc /proc/stressmix --min 5
step final-unload rmmod stressmix
step kernel-log-clean sh -c '! kmod-dmesg | grep -E "Oops|BUG:|WARNING:|Call Trace|general protection"'
exit $fail
