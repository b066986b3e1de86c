#!/bin/bash
# Provisioning of the Vagrant VM (see ../Vagrantfile), as root, in /vagrant.
# Thin on purpose: every step is a script the QEMU test VM runs too.
#
#   1. packages: DKMS and headers for the running kernel, LXC, the build
#      tools, Node.js 20 (Debian 12 has 18; NodeSource's repository is used)
#   2. build the checkout (npm ci && npm run build)
#   3. packaging/install-host.sh --server: the module through DKMS, the tools
#      in /opt/vhsm, the units; /etc/vhsm/ctids for vhsm, app1, app2
#   4. scripts/demo-guest.sh with the DKMS-built module (plain namespaces)
#   5. vm/guest-tests.mjs with the DKMS-built module: the end-to-end suite
#   6. modprobe vhsm_transport (modprobe.d: vhsm_veid=412), then
#      vagrant/lxc-demo.sh: LXC containers bound by the hook, the server in vhsm
#
# VHSM_STEPS="1 2 3 4 5 6" picks steps (default: all).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
STEPS=${VHSM_STEPS:-1 2 3 4 5 6}
export DEBIAN_FRONTEND=noninteractive
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if want 1; then
  step "1. packages"
  apt-get update -q
  apt-get install -y -q --no-install-recommends dkms "linux-headers-$(uname -r)" lxc \
    build-essential cmake python3 openssl iproute2 util-linux kmod ca-certificates curl gnupg rsync
  if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null; then
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
    echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_20.x nodistro main" > /etc/apt/sources.list.d/nodesource.list
    apt-get update -q
    apt-get install -y -q nodejs
  fi
fi

if want 2; then
  step "2. build"
  npm ci --no-fund --no-audit --loglevel=error
  npm run -s build
fi

if want 3; then
  step "3. install on this host (DKMS, /opt/vhsm, units)"
  bash packaging/install-host.sh --server --no-load
  grep -q '^vhsm ' /etc/vhsm/ctids || printf 'vhsm 412\napp1 101\napp2 102\n' >> /etc/vhsm/ctids
  systemd-analyze verify /usr/local/lib/systemd/system/vhsm-server.service
  dkms status -m vhsm-transport
fi

# The module DKMS built for this kernel; the demo and the suite insmod it themselves.
ko() { modinfo -n vhsm_transport; }
unload() { if [ -d /sys/module/vhsm_transport ]; then modprobe -r vhsm_transport; fi; }

if want 4; then
  step "4. the demo (scripts/demo-guest.sh, plain network namespaces)"
  unload
  VHSM_MODULE=$(ko) bash scripts/demo-guest.sh
fi

if want 5; then
  step "5. the end-to-end suite (vm/guest-tests.mjs, as in the QEMU VM)"
  unload
  mkdir -p /tmp/vhsm-out
  VHSM_MODULE=$(ko) node vm/guest-tests.mjs
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e 'const r = require("/tmp/vhsm-out/results.json"); const bad = r.filter((x) => x.fail); for (const x of bad) console.log(`FAILED ${x.name}\n${x.output}`); process.exit(bad.length ? 1 : 0)'
fi

if want 6; then
  step "6. LXC: containers bound by the hook, vhsm-server in vhsm (vagrant/lxc-demo.sh)"
  unload
  modprobe vhsm_transport
  # The containers' roots are overlays over this root: their upper layers
  # must be on another file system (overlayfs refuses nested layers).
  mountpoint -q /run/vhsm-lxc || { mkdir -p /run/vhsm-lxc && mount -t tmpfs -o mode=0700 tmpfs /run/vhsm-lxc; }
  VHSM_LXC_PATH=/run/vhsm-lxc VHSM_TOOLS=/opt/vhsm/dist/tools VHSM_HOOK=/opt/vhsm/packaging/lxc/vhsm-bind \
    VHSM_SERVER_CONFIG=/etc/vhsm/server.json bash vagrant/lxc-demo.sh
fi
step "done: vhsm_transport is loaded (vhsm_veid=$(cat /sys/module/vhsm_transport/parameters/vhsm_veid 2>/dev/null || echo -)); see docs/install.md"
