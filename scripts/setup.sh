#!/usr/bin/env bash
# Installs what VHSM needs to build and test on Debian 12, and nothing when it
# is all there already (fast, idempotent). Called by npm test, npm run demo
# and .ci/run. System packages need root; npm packages go to node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

# The 6.1 kernel the test VM boots and its headers; the newest 6.12 headers
# (the module must build and run there too: they pull in their kernel image,
# and need dwarves for BTF); QEMU and busybox-static for the VM; openssl to
# check signatures outside the server; dkms, lxc and shellcheck for the
# packaging tests (DKMS install, real LXC start-host hooks, script lint);
# sparse for the module's static checks (scripts/kernel-lint.sh).
# The PKCS#11 module: protobuf-c (codec generated at build time), libmnl,
# p11-kit's pkcs11.h, clang + its sanitizer runtimes for the fuzzer,
# valgrind, and the consumers its tests drive (OpenSC's pkcs11-tool,
# the OpenSSL engine, GnuTLS p11tool, pam_p11 + pamtester + wrappers,
# OpenSSH client and sshd (run as sshd -i by the tests), gdb's gcore,
# Java keytool). PostgreSQL 15: the many-hosts storage backend
# (scripts/pg-cluster.sh runs a throwaway cluster for the host tests).
pkgs=(linux-image-amd64 linux-headers-amd64 qemu-system-x86 busybox-static
      kmod cmake g++ make iproute2 util-linux openssl xz-utils zstd dwarves
      dkms lxc shellcheck sparse
      pkg-config protobuf-c-compiler libprotobuf-c-dev libmnl-dev libp11-kit-dev
      clang libclang-rt-14-dev valgrind binutils opensc libengine-pkcs11-openssl gnutls-bin
      libpam-p11 pamtester libpam-wrapper libnss-wrapper openssh-client openssh-server gdb
      openjdk-17-jre-headless postgresql-15 postgresql-client-15)
headers612() {
  apt-cache search --names-only '^linux-headers-6\.12\.[0-9]+\+deb12-amd64$' 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1
}
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
h612=$(headers612 || true)
if [ -z "$h612" ] || ! dpkg -s "$h612" >/dev/null 2>&1; then missing+=(linux-headers-6.12); fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  h612=$(headers612)
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" ${h612:+"$h612"} >/dev/null
  # The tests run sshd -i themselves: stop the daemon a fresh openssh-server starts.
  if [[ " ${missing[*]} " == *" openssh-server "* ]]; then systemctl disable --now ssh.service >/dev/null 2>&1 || true; fi
fi

# npm packages: install when missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-fund --no-audit --loglevel=error
fi
