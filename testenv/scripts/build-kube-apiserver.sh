#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and kube-controller-manager from the k8s.io/kubernetes Go module
# at a pinned release, through the Go module proxy, with the machine's Go toolchain, and stamps
# the real version.
# usage: build-kube-apiserver.sh v1.36.3 /abs/out/dir [binary...]
#   binary: kube-apiserver, kubectl, kube-controller-manager (default: all three); only the
#   named ones are built, so a cache missing one binary does not rebuild the others.
set -euo pipefail
KVER=${1:?kubernetes version, e.g. v1.36.3}
OUT=${2:?output dir}
shift 2
BINS=("$@")
if [ ${#BINS[@]} -eq 0 ]; then BINS=(kube-apiserver kubectl kube-controller-manager); fi
for b in "${BINS[@]}"; do
  case "$b" in
    kube-apiserver|kubectl|kube-controller-manager) ;;
    *) echo "error: unknown binary $b (kube-apiserver, kubectl, kube-controller-manager)" >&2; exit 2 ;;
  esac
done
REST=${KVER#v1.}           # 36.3
STAGING="v0.${REST}"       # staging modules are tagged v0.X.Y for Kubernetes v1.X.Y
MINOR=${REST%%.*}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "error: no Go toolchain on PATH; install Go >= 1.26 or set KUBEBUILDER_ASSETS" >&2; exit 2; }
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
go mod init example.invalid/kube-apiserver-build >/dev/null 2>&1

# k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them with replace
# directives that a consumer does not inherit: read its go.mod and pin each to v0.X.Y.
K8S_GOMOD=$(go mod download -json "k8s.io/kubernetes@${KVER}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
[ -f "$K8S_GOMOD" ] || { echo "error: could not download k8s.io/kubernetes@${KVER}" >&2; exit 1; }
for m in $(awk '$2=="v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$K8S_GOMOD"); do
  go mod edit -replace="${m}=${m}@${STAGING}"
done
GD=$(awk '$1=="godebug" {print $2}' "$K8S_GOMOD")
if [ -n "$GD" ]; then go mod edit -godebug="$GD"; fi
PKGS=()
for b in "${BINS[@]}"; do PKGS+=("k8s.io/kubernetes/cmd/${b}@${KVER}"); done
go get "${PKGS[@]}"

NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LDF="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF+=" -X $p.gitVersion=${KVER} -X $p.gitMajor=1 -X $p.gitMinor=${MINOR}"
  LDF+=" -X $p.gitTreeState=clean -X $p.buildDate=${NOW}"
done
for b in "${BINS[@]}"; do
  go build -trimpath -ldflags "$LDF" -o "$OUT/${b}.tmp" "k8s.io/kubernetes/cmd/${b}"
done
for b in "${BINS[@]}"; do
  mv "$OUT/${b}.tmp" "$OUT/${b}"
done
for b in "${BINS[@]}"; do
  case "$b" in
    kube-apiserver|kube-controller-manager) "$OUT/$b" --version ;;
  esac
done
