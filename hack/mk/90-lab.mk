# The lab node (hack/lab): a real single-node cluster in a qemu guest, its control plane on the host.
# Not part of `make test` yet: the end-to-end test on it (issue 12) comes first.
.PHONY: lab-build lab-up lab-down lab-smoke

lab-build:
	hack/lab/lab build

lab-up:
	hack/lab/lab up

lab-down:
	hack/lab/lab down

# A pod of an image built here reaches Running under runc; prints its cgroup path and the timings.
lab-smoke: lab-up
	hack/lab/lab smoke
