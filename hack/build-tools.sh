#!/usr/bin/env bash
# Builds the pinned tools into .cache/bin, from the Go module proxy only, and installs the
# Debian packages the local cluster needs. Idempotent: .cache/bin/.stamps/<tool> records what
# was built; a tool whose stamp matches is skipped. Order: helm, helm3, ct (other work needs
# them first), then the Kubernetes binaries, then kwok, the provisioner, the exporter, the registry, crane
# and kube-score. Timings go to .cache/bin/build-times.log.
#
#   hack/build-tools.sh              everything (make tools)
#   hack/build-tools.sh helm helm3   only the named ones, in the order given (make check)
#
# Names: apt (the Debian packages), helm, helm3, ct, control-plane (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl), node (kubelet, kube-proxy), etcd (etcd,
# etcdctl), kwok (and its stages), provisioner (local-path-provisioner, tools/provisioner),
# exporter (vineyard-exporter, tools/exporter), coredns, registry, crane, kube-score.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/.cache/bin"
STAMPS="$BIN/.stamps"
TOOLS="$ROOT/tools"
mkdir -p "$STAMPS"
# shellcheck source=../tools/versions.env
source "$TOOLS/versions.env"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

# With Go's jsonv2 experiment on, kube-apiserver serves a garbled /openapi/v2 (helm then fails
# with "failed to download openapi"): turn it off where this Go enables it by default.
if go list -f '{{context.ToolTags}}' runtime | grep -q 'goexperiment.jsonv2'; then
  export GOEXPERIMENT=nojsonv2
fi
GO_SIG="$(go env GOVERSION) ${GOEXPERIMENT:-}"

log() { echo "build-tools: $*" >&2; }

up_to_date() {  # name stamp
  [[ -x "$BIN/$1" && -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]
}

timed() {  # label cmd...
  local start=$SECONDS
  "${@:2}"
  local secs=$((SECONDS - start))
  log "$1 built in ${secs}s"
  echo "$(date -u +%FT%TZ) $1 ${secs}s ($GO_SIG)" >>"$BIN/build-times.log"
}

# go_install NAME PKG VERSION LDFLAGS: `go install PKG@VERSION` under the name NAME. With
# STATIC=1 in the environment: CGO_ENABLED=0 and -trimpath, as helm's own releases are built.
go_install() {
  local name=$1 pkg=$2 version=$3 ldflags=$4 stamp="$3 $GO_SIG${STATIC:+ static}"
  if up_to_date "$name" "$stamp"; then log "$name $version: up to date"; return; fi
  local tmp build_env
  tmp="$(mktemp -d "$BIN/.build-XXXX")"
  build_env=("GOBIN=$tmp")
  [[ -z ${STATIC:-} ]] || build_env+=(CGO_ENABLED=0 "GOFLAGS=$GOFLAGS -trimpath")
  log "$name $version: building"
  timed "$name $version" env "${build_env[@]}" go install -ldflags "$ldflags" "$pkg@$version"
  mv -f "$tmp/$(basename "$pkg")" "$BIN/$name"
  rmdir "$tmp"
  echo "$stamp" >"$STAMPS/$name"
}

# required_version DIR MODULE: the version of MODULE that DIR/go.mod requires.
required_version() {
  awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m && $2 ~ /^v/ {print $2}' "$1/go.mod"
}

# module_build NAME DIR PKG LDFLAGS: builds PKG as pinned by DIR/go.mod (a `tool` there).
module_build() {
  local name=$1 dir=$2 pkg=$3 ldflags=$4 version stamp
  version="$(required_version "$dir" "${pkg%/*}")"
  stamp="$version $(sha256sum "$dir/go.mod" | cut -c1-12) $GO_SIG"
  if up_to_date "$name" "$stamp"; then log "$name $version: up to date"; return; fi
  log "$name $version: building"
  (cd "$dir" && timed "$name $version" go build -ldflags "$ldflags" -o "$BIN/$name" "$pkg")
  echo "$stamp" >"$STAMPS/$name"
}

# client_go_minor MODULE@VERSION: the Kubernetes minor version whose client-go it uses.
client_go_minor() {
  local mod
  mod="$(go mod download -json "$1" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]}' "$mod"
}

# kube_build GROUP BINARY...: builds k8s.io/kubernetes/cmd/BINARY from tools/go.mod.
kube_build() {
  local group=$1; shift
  local version stamp todo=()
  version="$(required_version "$TOOLS" k8s.io/kubernetes)"
  stamp="$version $(sha256sum "$TOOLS/go.mod" | cut -c1-12) $GO_SIG"
  for b in "$@"; do up_to_date "$b" "$stamp" || todo+=("$b"); done
  if ((${#todo[@]} == 0)); then log "$group $version: up to date"; return; fi
  local minor=${version#v1.}; minor=${minor%%.*}
  local v=k8s.io/component-base/version c=k8s.io/client-go/pkg/version x=""
  for pkg in $v $c; do
    x+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local pkgs=()
  for b in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  log "$group $version: building ${todo[*]}"
  (cd "$TOOLS" && timed "$group $version (${todo[*]})" \
    go build -ldflags "-s -w$x" -o "$BIN/" "${pkgs[@]}")
  for b in "${todo[@]}"; do echo "$stamp" >"$STAMPS/$b"; done
}

# kwok_stages: kwok's own stages (node-fast, node-heartbeat-with-lease, pod-fast: what
# `kwokctl` runs by default), from the pinned module, joined into the config the controller reads.
kwok_stages() {
  local out="$BIN/kwok-stages.yaml" stamp="$KWOK_VERSION"
  if [[ -f "$out" && "$(cat "$STAMPS/kwok-stages" 2>/dev/null)" == "$stamp" ]]; then return; fi
  local dir
  dir="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  local s="$dir/kustomize/stage" f
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
           pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"; cat "$s/$f.yaml"
  done >"$out.tmp"
  mv -f "$out.tmp" "$out"
  echo "$stamp" >"$STAMPS/kwok-stages"
  log "kwok stages $KWOK_VERSION: written to $out"
}

# etcd_build: etcd, etcdctl and etcdutl for the real node's etcd image, from etcd's own modules
# at the version tools/etcd/go.mod pins (= the chart's etcd.image.tag). Static, like upstream's.
etcd_build() {
  local dir="$TOOLS/etcd" version stamp b
  version="$(required_version "$dir" go.etcd.io/etcd/server/v3)"
  stamp="$version $(sha256sum "$dir/go.mod" | cut -c1-12) $GO_SIG"
  if up_to_date etcd "$stamp" && up_to_date etcdctl "$stamp" && up_to_date etcdutl "$stamp"; then
    log "etcd $version: up to date"; return
  fi
  log "etcd $version: building etcd, etcdctl, etcdutl"
  for b in server etcdctl etcdutl; do
    (cd "$dir" && timed "etcd $version ($b)" env CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w" -o "$BIN/$([[ $b == server ]] && echo etcd || echo "$b")" \
      "go.etcd.io/etcd/$b/v3")
  done
  for b in etcd etcdctl etcdutl; do echo "$stamp" >"$STAMPS/$b"; done
}

# own_build: our own Go programs in tools/ (the provisioner of the local cluster's default
# StorageClass; the chart's metrics exporter). Their stamps hash the sources too (not only
# go.mod, as for pinned tools), so an edit rebuilds them and re-runs their Go tests.
own_build() {  # name, tools/ dir, version (stamped and linked into main.version; may be empty)
  local name=$1 dir="$TOOLS/$2" version=$3 stamp
  stamp="$(cd "$dir" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-12) $version $GO_SIG"
  if up_to_date "$name" "$stamp"; then log "$name: up to date"; return; fi
  log "$name: testing and building"
  (cd "$dir" && export CGO_ENABLED=0 && timed "$name (vet, test, build)" own_steps "$name" "$version")
  echo "$stamp" >"$STAMPS/$name"
}

own_steps() {  # name, version; in its tools/ dir
  go vet -trimpath ./...
  go test -trimpath -count=1 ./... >&2
  go build -trimpath -ldflags "-s -w${2:+ -X main.version=$2}" -o "$BIN/$1" .
}

apt_packages() {
  local missing=()
  for p in $APT_PACKAGES $REAL_NODE_APT_PACKAGES; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then log "apt: ${APT_PACKAGES} ${REAL_NODE_APT_PACKAGES} installed"; return; fi
  log "apt: installing ${missing[*]}"
  apt-get update -qq
  # No package may start its service: prometheus's would listen on 0.0.0.0:9090, containerd's and
  # etcd's would take what the local cluster starts itself. policy-rc.d exiting 101 forbids it
  # (present in container images; made for the install where it is missing).
  local policy=/usr/sbin/policy-rc.d made=
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ -n $made ]]; then rm -f "$policy"; fi
}

ALL=(apt helm helm3 ct control-plane node etcd kwok provisioner exporter coredns registry crane kube-score)

build() {  # name
  case $1 in
    apt) apt_packages ;;
    # Static and stripped, as upstream releases it: the platform wheels bundle this very binary
    # (hack/release.py reuses it for this machine's wheel when its build info is what the
    # release asks for, and cross-compiles the other platforms with the same flags).
    helm)
      STATIC=1 go_install helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" \
        "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
      ;;
    helm3)
      local h3=helm.sh/helm/v3 m3
      m3="$(client_go_minor "$h3@$HELM3_VERSION")"
      go_install helm3 "$h3/cmd/helm" "$HELM3_VERSION" \
        "-s -w -X $h3/internal/version.version=$HELM3_VERSION -X $h3/internal/version.gitTreeState=clean
         -X $h3/pkg/lint/rules.k8sVersionMajor=1 -X $h3/pkg/lint/rules.k8sVersionMinor=$m3
         -X $h3/pkg/chartutil.k8sVersionMajor=1 -X $h3/pkg/chartutil.k8sVersionMinor=$m3"
      ;;
    ct)
      local ct=github.com/helm/chart-testing/v3
      module_build ct "$TOOLS/ct" "$ct/ct" \
        "-s -w -X $ct/ct/cmd.Version=$(required_version "$TOOLS/ct" "$ct")"
      ;;
    control-plane)
      kube_build control-plane kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
    node) kube_build node kubelet kube-proxy ;;
    etcd) etcd_build ;;
    kwok)
      go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" \
        "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
      kwok_stages
      ;;
    provisioner) own_build local-path-provisioner provisioner "" ;;
    # The chart's metrics exporter, versioned as the chart (its image's tag).
    exporter)
      own_build vineyard-exporter exporter \
        "$(awk '$1 == "version:" {print $2}' "$ROOT/charts/vineyard/Chart.yaml")"
      ;;
    # CoreDNS for the real node: its own module, as released (no replace directives).
    coredns) go_install coredns github.com/coredns/coredns "$COREDNS_VERSION" "-s -w" ;;
    # The OCI registry for the release tests (`helm push`, `helm install oci://`).
    registry)
      local dist=github.com/distribution/distribution/v3
      go_install registry "$dist/cmd/registry" "$REGISTRY_VERSION" \
        "-s -w -X $dist/version.version=$REGISTRY_VERSION"
      ;;
    # go-containerregistry's crane: hack/release.py pushes the exporter image (an OCI layout)
    # to the chart's registry with it (auth from the docker config, as any registry client).
    crane)
      local ggcr=github.com/google/go-containerregistry
      STATIC=1 go_install crane "$ggcr/cmd/crane" "$CRANE_VERSION" \
        "-s -w -X $ggcr/cmd/crane/cmd.Version=$CRANE_VERSION"
      ;;
    # The manifest scanner of tests/reliability (checkov, the other one, is a PyPI package).
    kube-score)
      go_install kube-score github.com/zegl/kube-score/cmd/kube-score "$KUBE_SCORE_VERSION" \
        "-s -w -X main.version=$KUBE_SCORE_VERSION"
      ;;
  esac
}

main() {
  local names=("$@") name
  ((${#names[@]})) || names=("${ALL[@]}")
  for name in "${names[@]}"; do  # every name checked before anything is built
    if [[ " ${ALL[*]} " != *" $name "* ]]; then
      echo "build-tools: unknown tool '$name'; one of: ${ALL[*]}" >&2
      exit 2
    fi
  done
  for name in "${names[@]}"; do build "$name"; done
}

main "$@"
