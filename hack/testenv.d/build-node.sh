# shellcheck shell=bash
# Node binaries (kubelet, kube-proxy) from the same pinned Kubernetes module as the test control plane:
# the scratch module build_kubernetes writes in $K8S_DIR/src, the same Go caches and version stamp.
# Sourced after build.sh (hack/lab uses it); static (CGO_ENABLED=0 from go_env) so the guest needs no libc match.

build_node_binaries() {
  local bin=$K8S_DIR/bin
  [ -x "$bin/kubelet" ] && [ -x "$bin/kube-proxy" ] && return 0
  # The scratch module (go.mod with the staging replaces) comes from the control plane's build.
  build_kubernetes
  [ -s "$K8S_DIR/src/go.mod" ] || die "no scratch module in $K8S_DIR/src (remove $bin to rebuild the control plane)"
  go_env
  local ldflags
  ldflags=$(k8s_version_ldflags)
  (cd "$K8S_DIR/src" && _run_build "kubelet+kube-proxy $K8S_VERSION" "$K8S_DIR/build-node.log" \
    nice -n 15 go build -v -p 2 -ldflags "$ldflags" -o "$bin/" \
      k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy)
}
