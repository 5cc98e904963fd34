# Kernel module: checkpatch --strict, strict builds (W=1 and sparse, any warning fails) against
# Debian bookworm 6.1 and bookworm-backports 6.12 headers, then the qemu checks on both kernels
# (kmod/test/run.sh installs headers, guest kernels, qemu, busybox and sparse from Debian on first
# use; checkpatch.pl comes from Debian's linux-source-6.1, cached).
.PHONY: test-kmod checkpatch-kmod bench-kmod kmod-fixtures
TEST_TARGETS += test-kmod

test-kmod: checkpatch-kmod
	kmod/test/run.sh

checkpatch-kmod:
	kmod/test/checkpatch.sh

# Module read vs userspace cgroupfs reader at 10, 100 and 1,000 cgroups, one boot per kernel.
bench-kmod:
	kmod/test/run.sh --bench

# Refresh api/tests/fixtures/kmod/ with documents the real module wrote in the guest.
kmod-fixtures:
	kmod/test/run.sh --fixtures api/tests/fixtures/kmod
