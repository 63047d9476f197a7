#!/usr/bin/env bash
# Builds the Kubernetes binaries the k8s test harness (test/k8s/cluster.ts)
# runs, through the Go module proxy only (no prebuilt downloads), and caches
# them under $SLUICE_K8S_CACHE/$K8S_VERSION/bin. Idempotent: a binary already
# in the cache is skipped, so a second run costs nothing. A cold build on two
# cores takes about 12 min (+4 for e2e.test).
#
#   test/k8s/build.sh            # everything
#   SKIP_E2E=1 test/k8s/build.sh # without e2e.test
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.31.4}
COREDNS_VERSION=${COREDNS_VERSION:-v1.11.3}
CRICTL_VERSION=${CRICTL_VERSION:-v1.34.0}
CACHE=${SLUICE_K8S_CACHE:-/var/cache/sluice-k8s}
BIN=$CACHE/$K8S_VERSION/bin
WORK=$CACHE/$K8S_VERSION/src

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: $*"; }

command -v go >/dev/null || die "go not found in PATH (needs Go >= 1.22)"
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -buildvcs=false -mod=mod" CGO_ENABLED=0

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
staging_version=v0.${K8S_VERSION#v1.}
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  LDFLAGS+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

mkdir -p "$BIN" "$WORK"

# name:import path, built with `go build`.
CMDS=(
  kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver
  kubectl:k8s.io/kubernetes/cmd/kubectl
  kubelet:k8s.io/kubernetes/cmd/kubelet
  kube-controller-manager:k8s.io/kubernetes/cmd/kube-controller-manager
  kube-scheduler:k8s.io/kubernetes/cmd/kube-scheduler
  kube-proxy:k8s.io/kubernetes/cmd/kube-proxy
  agnhost:k8s.io/kubernetes/test/images/agnhost
)

need_k8s=0
for c in "${CMDS[@]}"; do [ -x "$BIN/${c%%:*}" ] || need_k8s=1; done
if [ -z "${SKIP_E2E:-}" ] && [ ! -x "$BIN/e2e.test" ]; then need_k8s=1; fi

if [ "$need_k8s" = 1 ]; then
  # The wrapper module: kubernetes' go.mod requires its staging modules at
  # v0.0.0 and replaces them with ./staging/...; a dependant must replace
  # each of them with the published v0.x.y itself.
  if [ ! -f "$WORK/go.sum" ] || ! grep -q "k8s.io/kubernetes $K8S_VERSION" "$WORK/go.mod" 2>/dev/null; then
    log "preparing wrapper module in $WORK"
    gomod=$(cd "$WORK" && timeout 15m go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION's go.mod through the module proxy"
    staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$gomod" | sort -u)
    [ -n "$staging" ] || die "no staging replace lines found in $gomod"
    {
      echo "module sluice.test/k8s-binaries"
      echo
      echo "go 1.22.0"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      for m in $staging; do echo "replace $m => $m $staging_version"; done
    } > "$WORK/go.mod"
    {
      echo "//go:build tools"
      echo
      echo "package tools"
      echo
      echo "import ("
      for c in "${CMDS[@]}"; do echo "	_ \"${c#*:}\""; done
      echo "	_ \"k8s.io/kubernetes/test/e2e\""
      echo ")"
    } > "$WORK/tools.go"
    log "go mod tidy (downloads ~2.7 GB of modules on a cold cache)"
    (cd "$WORK" && timeout 30m go mod tidy) || die "go mod tidy failed in $WORK"
  fi

  for c in "${CMDS[@]}"; do
    name=${c%%:*}; pkg=${c#*:}
    if [ -x "$BIN/$name" ]; then log "have $name"; continue; fi
    log "building $name ($pkg)"
    start=$SECONDS
    (cd "$WORK" && timeout 30m go build -trimpath -ldflags "$LDFLAGS" -o "$BIN/.$name.tmp" "$pkg") \
      || { rm -f "$BIN/.$name.tmp"; die "building $name failed"; }
    mv "$BIN/.$name.tmp" "$BIN/$name"
    log "built $name in $((SECONDS - start)) s"
  done

  if [ -z "${SKIP_E2E:-}" ]; then
    if [ -x "$BIN/e2e.test" ]; then log "have e2e.test"; else
      log "building e2e.test (go test -c k8s.io/kubernetes/test/e2e)"
      start=$SECONDS
      (cd "$WORK" && timeout 30m go test -c -trimpath -ldflags "$LDFLAGS" -o "$BIN/.e2e.test.tmp" k8s.io/kubernetes/test/e2e) \
        || { rm -f "$BIN/.e2e.test.tmp"; die "building e2e.test failed"; }
      mv "$BIN/.e2e.test.tmp" "$BIN/e2e.test"
      log "built e2e.test in $((SECONDS - start)) s"
    fi
  fi
else
  log "have all Kubernetes $K8S_VERSION binaries"
fi

# CoreDNS: a plain `go install` of the released module works.
if [ -x "$BIN/coredns" ]; then log "have coredns"; else
  log "building coredns $COREDNS_VERSION"
  start=$SECONDS
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (GOFLAGS="-buildvcs=false" GOBIN="$tmp" timeout 30m go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION") \
    || die "building coredns failed"
  mv "$tmp/coredns" "$BIN/coredns"
  log "built coredns in $((SECONDS - start)) s"
fi

# crictl (optional, for debugging): `go install` of the sub-path is refused;
# a wrapper module that requires cri-tools works.
if [ -x "$BIN/crictl" ] || [ -n "${SKIP_CRICTL:-}" ]; then log "have crictl (or skipped)"; else
  log "building crictl $CRICTL_VERSION (optional)"
  cw=$CACHE/crictl-$CRICTL_VERSION/src
  mkdir -p "$cw"
  if (cd "$cw" && { [ -f go.mod ] || printf 'module sluice.test/crictl\n\ngo 1.22.0\n' > go.mod; } \
      && timeout 15m go get "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" \
      && timeout 20m go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" -o "$BIN/.crictl.tmp" sigs.k8s.io/cri-tools/cmd/crictl); then
    mv "$BIN/.crictl.tmp" "$BIN/crictl"; log "built crictl"
  else
    rm -f "$BIN/.crictl.tmp"; echo "build.sh: warning: crictl build failed (optional, continuing)" >&2
  fi
fi

# Read whole before matching: `| head -1` could close the pipe under kubectl
# (SIGPIPE), which pipefail turns into a false failure.
kubectl_version=$("$BIN/kubectl" version --client 2>/dev/null || true)
grep -q "$K8S_VERSION" <<<"${kubectl_version%%$'\n'*}" \
  || die "$BIN/kubectl does not report $K8S_VERSION (ldflags?)"
log "done: $(ls "$BIN" | tr '\n' ' ')"
