#!/usr/bin/env bash
# The kernel module's static checks, as CI runs them: a W=1 build with sparse
# (C=2) against every installed kernel's headers, then checkpatch --strict over
# the sources and the uAPI header. Any warning fails.
#
# checkpatch.pl is not in Debian's headers packages; it comes out of the
# linux-source-6.1 package (downloaded, not installed: only three files of it
# are needed) into a cache directory.
set -euo pipefail
cd "$(dirname "$0")/../kernel"

command -v sparse >/dev/null || { echo "kernel-lint: sparse is missing (scripts/setup.sh installs it)" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"; make -s clean >/dev/null 2>&1 || true' EXIT
for build in /lib/modules/*/build; do
  kver=$(basename "$(dirname "$build")")
  echo "== kernel-lint: W=1 + sparse against $kver"
  make -s clean >/dev/null
  make check KVER="$kver" >"$log" 2>&1 || { cat "$log"; exit 1; }
  if grep -E -i '(warning|error):' "$log"; then
    echo "kernel-lint: the build for $kver is not clean" >&2
    exit 1
  fi
done

cache=${VHSM_CHECKPATCH_CACHE:-/var/cache/vhsm/checkpatch}
checkpatch=$cache/scripts/checkpatch.pl
if [ ! -x "$checkpatch" ]; then
  echo "== kernel-lint: fetching checkpatch.pl from linux-source-6.1"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root linux-source-6.1 >/dev/null)
  dpkg-deb --fsys-tarfile "$tmp"/linux-source-6.1_*.deb | tar -x -C "$tmp" --wildcards './usr/src/linux-source-6.1.tar.xz'
  mkdir -p "$cache"
  tar -xJf "$tmp"/usr/src/linux-source-6.1.tar.xz -C "$cache" --strip-components=1 \
    linux-source-6.1/scripts/checkpatch.pl linux-source-6.1/scripts/spelling.txt \
    linux-source-6.1/scripts/const_structs.checkpatch
  rm -rf "$tmp"
fi
echo "== kernel-lint: checkpatch --strict"
make -s style CHECKPATCH="$checkpatch" >"$log" 2>&1 || { cat "$log"; exit 1; }
if grep -E '^total:' "$log" | grep -v -q '^total: 0 errors, 0 warnings, 0 checks'; then
  cat "$log"
  echo "kernel-lint: checkpatch found problems" >&2
  exit 1
fi
echo "kernel-lint: clean"
