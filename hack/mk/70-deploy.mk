# Deployment: the kind quick start for users (`make up`, `make down`) and the deployment tests
# (chart, RBAC, Pod Security, dashboards) against the test control plane.
.PHONY: up down test-deploy
TEST_TARGETS += test-deploy

# Without a Docker daemon, the lab node (hack/lab: a qemu guest) stands in for kind.
up:
	@if docker info >/dev/null 2>&1; then hack/kind-up.sh; else hack/lab/up-stack.sh; fi

down:
	@if docker info >/dev/null 2>&1; then hack/kind-down.sh; else hack/lab/lab down; fi

test-deploy:
	hack/test-deploy/run.sh
