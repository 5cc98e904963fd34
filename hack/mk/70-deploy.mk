# Deployment: the kind quick start for users (`make up`, `make down`) and the deployment tests
# (chart, RBAC, Pod Security, dashboards) against the test control plane.
.PHONY: up down test-deploy
TEST_TARGETS += test-deploy

up:
	hack/kind-up.sh

down:
	hack/kind-down.sh

test-deploy:
	hack/test-deploy/run.sh
