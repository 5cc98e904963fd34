#!/bin/sh
# Runs inside the qemu guest (see lib.sh): module read vs userspace cgroupfs reader.
fail=0
kmod-step load insmod /stressmix.ko || exit 1
stressmix-kmod-check bench --counts "${KMOD_BENCH_COUNTS:-10,100,1000}" --runs "${KMOD_BENCH_RUNS:-21}" || fail=1
rmmod stressmix || fail=1
exit $fail
