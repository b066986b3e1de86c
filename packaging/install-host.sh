#!/bin/bash
# Installs VHSM on a Debian 12 (or similar) host from a built checkout
# (npm ci && npm run build), as root. Running it again brings an install up
# to date; --uninstall takes it away again. See docs/install.md.
#
#   packaging/install-host.sh [options]
#
# What it installs (each part can be left out):
#   module   the kernel module's source in /usr/src/vhsm-transport-VERSION,
#            built and installed with DKMS (rebuilt on kernel upgrades),
#            /etc/modprobe.d/vhsm.conf (vhsm_veid) and
#            /etc/modules-load.d/vhsm.conf (load at boot); loads it now
#   tools    the node tools in /opt/vhsm (production node_modules only),
#            vhsm, vhsm-admin, vhsmctl, vhsm-server in /usr/local/bin, the
#            container bind scripts in /opt/vhsm/packaging, the example map
#            /etc/vhsm/ctids and vhsm-docker-bind.service (not enabled)
#   pkcs11   the PKCS#11 module libvhsm-pkcs11.so in the multiarch
#            /usr/lib/<triplet>/pkcs11/ and its p11-kit module file
#            /usr/share/p11-kit/modules/vhsm.module, so p11-kit-aware programs
#            (p11-kit list-modules, p11-kit-proxy.so) find it (client containers)
#   server   (only with --server; in the VHSM container) the system user
#            vhsm, /var/lib/vhsm, /etc/vhsm/server.json and
#            vhsm-server.service (not enabled: add users first)
#
# Options:
#   --dry-run       print what would be done, change nothing
#   --uninstall     remove what an install put there; keeps /etc/vhsm and
#                   /var/lib/vhsm (the key store) and the user vhsm
#   --kernel KVER   build the module for KVER (default: the running kernel)
#   --veid N        vhsm_veid for a new /etc/modprobe.d/vhsm.conf (default 412;
#                   an existing file is never overwritten)
#   --no-module     leave out the module part (e.g. inside a container)
#   --no-tools      leave out the tools part
#   --no-pkcs11     leave out the pkcs11 part
#   --server        add the server part
#   --no-load       do not load the module now
#   --prefix DIR    where the tools go (default /opt/vhsm)
#   --root DIR      install into DIR instead of / (staging, tests): DKMS runs
#                   with its trees under DIR and without depmod; nothing is
#                   loaded, no user is created, systemd is not told
#
# Exit status: 0 done, 1 failed (the message says what to do), 2 bad usage.
set -euo pipefail
# Whatever root's umask: the tools must be readable by the server's user.
umask 022

SRC=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
PROG=install-host.sh
DRY=
UNINSTALL=
KVER=$(uname -r)
VEID=412
WANT_MODULE=1
WANT_TOOLS=1
WANT_PKCS11=1
WANT_SERVER=
LOAD=1
PREFIX=/opt/vhsm
ROOT=
NAME=vhsm-transport
BINARIES=(vhsm vhsm-admin vhsmctl vhsm-server)

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }
need_value() { [ "$2" -ge 2 ] || { printf '%s: %s needs a value\n' "$PROG" "$1" >&2; exit 2; }; }

while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --kernel) need_value "$1" $#; KVER=$2; shift ;;
    --veid) need_value "$1" $#; VEID=$2; shift ;;
    --no-module) WANT_MODULE= ;;
    --no-tools) WANT_TOOLS= ;;
    --no-pkcs11) WANT_PKCS11= ;;
    --server) WANT_SERVER=1 ;;
    --no-load) LOAD= ;;
    --prefix) need_value "$1" $#; PREFIX=$2; shift ;;
    --root) need_value "$1" $#; ROOT=$(readlink -m "$2"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case $VEID in '' | *[!0-9]* | 0*) printf '%s: --veid must be a CTID, 1..4294967295\n' "$PROG" >&2; exit 2 ;; esac
case $PREFIX in /*) ;; *) printf '%s: --prefix must be absolute\n' "$PROG" >&2; exit 2 ;; esac

# The module's version is the one in dkms.conf: DKMS insists they agree.
VERSION=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$SRC/kernel/dkms.conf")
[ -n "$VERSION" ] || die "no PACKAGE_VERSION in $SRC/kernel/dkms.conf"
grep -q "^PACKAGE_NAME=\"$NAME\"" "$SRC/kernel/dkms.conf" || die "kernel/dkms.conf does not name $NAME"

# --- helpers: every change goes through these, so --dry-run shows them all.
run() {
  printf '+ %s\n' "$*"
  [ -n "$DRY" ] || "$@"
}
# put SRC DST MODE: installs a file if it differs (or is missing).
put() {
  if [ -f "$ROOT$2" ] && cmp -s "$1" "$ROOT$2"; then
    # Same bytes; only the mode may need fixing.
    [ "$(stat -c %a "$ROOT$2")" = "${3#0}" ] || run chmod "$3" "$ROOT$2"
    return 0
  fi
  run install -D -m "$3" "$1" "$ROOT$2"
}
# put_new SRC DST MODE: installs a config file only if it is missing (the admin's edits win).
put_new() {
  if [ -e "$ROOT$2" ]; then
    cmp -s "$1" "$ROOT$2" || say "  keeping $2 (it differs from $1: yours wins)"
    return 0
  fi
  run install -D -m "$3" "$1" "$ROOT$2"
}
remove() {
  local p
  for p in "$@"; do
    if [ -e "$ROOT$p" ] || [ -L "$ROOT$p" ]; then run rm -rf -- "$ROOT$p"; fi
  done
}
live() { [ -z "$ROOT" ]; }
systemd_running() { live && [ -d /run/systemd/system ]; }
dkms_() {
  if live; then run dkms "$@"
  else run dkms "$@" --sourcetree "$ROOT/usr/src" --dkmstree "$ROOT/var/lib/dkms" --installtree "$ROOT/lib/modules"
  fi
}
dkms_status() {
  if live; then dkms status -m "$NAME" "$@" 2>/dev/null
  else dkms status -m "$NAME" "$@" --sourcetree "$ROOT/usr/src" --dkmstree "$ROOT/var/lib/dkms" --installtree "$ROOT/lib/modules" 2>/dev/null
  fi
}
# Versions DKMS knows ("vhsm-transport/0.1.0, 6.1.0-56-amd64, x86_64: installed" or "vhsm-transport/0.1.0: added").
dkms_versions() { dkms_status | sed -n "s|^$NAME/\([^,:]*\)[,:].*|\1|p" | sort -u; }

if [ -z "$ROOT" ] && [ -z "$DRY" ] && [ "$(id -u)" -ne 0 ]; then
  die "run me as root (or look first: --dry-run)"
fi
[ -z "$ROOT" ] || [ -n "$DRY" ] || mkdir -p "$ROOT"

# --- module --------------------------------------------------------------
module_sources() {
  # What DKMS needs to build, and the docs; never build products.
  local f
  (
    cd "$SRC/kernel"
    for f in Makefile Kbuild dkms.conf README.md vhsm.yaml ./*.c ./*.h; do
      case $f in *.mod.c) ;; *) printf '%s\n' "$f" ;; esac
    done
    find uapi -type f -name '*.h'
  )
}

install_module() {
  say "== kernel module $NAME/$VERSION (DKMS) for $KVER"
  # A dry run still shows every step.
  local missing=
  command -v dkms >/dev/null || missing="dkms is not installed: apt-get install dkms linux-headers-$KVER"
  [ -n "$missing" ] || [ -e "/lib/modules/$KVER/build/Makefile" ] ||
    missing="no kernel headers for $KVER: apt-get install linux-headers-$KVER (or linux-headers-amd64 for the default kernel)"
  if [ -n "$missing" ]; then
    [ -n "$DRY" ] || die "$missing"
    say "  !! $missing"
  fi
  local dst=/usr/src/$NAME-$VERSION stage f v
  live || run mkdir -p "$ROOT/usr/src" "$ROOT/var/lib/dkms" "$ROOT/lib/modules/$KVER"
  stage=$(mktemp -d)
  # (A pipe, not <(...): /dev/fd may be missing, e.g. in a minimal VM.)
  module_sources | while read -r f; do install -D -m 0644 "$SRC/kernel/$f" "$stage/$f"; done

  # Other versions: DKMS would keep building them too; an install is one version.
  for v in $(dkms_versions); do
    [ "$v" = "$VERSION" ] || { dkms_ remove "$NAME/$v" --all; remove "/usr/src/$NAME-$v"; }
  done
  if [ -d "$ROOT$dst" ] && diff -r -q "$stage" "$ROOT$dst" >/dev/null; then
    say "  $dst is up to date"
  else
    # Changed sources under the same version: DKMS caches builds by version, start over.
    if dkms_versions | grep -qx "$VERSION"; then dkms_ remove "$NAME/$VERSION" --all; fi
    remove "$dst"
    run mkdir -p "$ROOT$dst"
    run cp -r "$stage/." "$ROOT$dst/"
  fi
  rm -rf "$stage"
  dkms_versions | grep -qx "$VERSION" || dkms_ add "$NAME/$VERSION"
  if dkms_status -v "$VERSION" -k "$KVER" | grep -q ': installed'; then
    say "  already built and installed for $KVER"
  elif live; then
    dkms_ install "$NAME/$VERSION" -k "$KVER"
  else
    dkms_ install "$NAME/$VERSION" -k "$KVER" --no-depmod
  fi

  say "== module configuration"
  local conf
  conf=$(mktemp)
  sed "s/vhsm_veid=[0-9]*/vhsm_veid=$VEID/" "$SRC/packaging/modprobe.d/vhsm.conf" > "$conf"
  put_new "$conf" /etc/modprobe.d/vhsm.conf 0644
  rm -f "$conf"
  put "$SRC/packaging/modules-load.d/vhsm.conf" /etc/modules-load.d/vhsm.conf 0644

  if [ -n "$LOAD" ] && live; then
    if [ -d /sys/module/vhsm_transport ]; then
      say "  vhsm_transport is loaded (vhsm_veid=$(cat /sys/module/vhsm_transport/parameters/vhsm_veid)); to run a new build: rmmod vhsm_transport && modprobe vhsm_transport"
    else
      run modprobe vhsm_transport
    fi
  fi
}

uninstall_module() {
  say "== kernel module $NAME"
  if live && [ -d /sys/module/vhsm_transport ]; then
    run modprobe -r vhsm_transport || say "  could not unload vhsm_transport (a server or client still uses it?): it goes at the next reboot"
  fi
  local v
  if command -v dkms >/dev/null; then
    for v in $(dkms_versions); do dkms_ remove "$NAME/$v" --all; done
  fi
  remove "/usr/src/$NAME-$VERSION" /etc/modprobe.d/vhsm.conf /etc/modules-load.d/vhsm.conf
}

# --- tools ----------------------------------------------------------------
# Top-level node_modules entries (NAME or @SCOPE/NAME) of the production dependency tree.
production_packages() {
  command -v npm >/dev/null || return 0
  { cd "$SRC" && npm ls --omit=dev --all --parseable 2>/dev/null; } |
    sed -n "s#^$SRC/node_modules/\(@[^/]*/[^/]*\|[^@/][^/]*\)\(/.*\)\{0,1\}\$#\1#p" | sort -u
}

install_tools() {
  say "== tools in $PREFIX"
  command -v node >/dev/null || die "node is not installed (VHSM needs Node.js 20.19 or later)"
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
    die "node $(node -v) is too old: VHSM needs Node.js 20.19 or later"
  local f
  for f in dist/tools/vhsmctl.js dist/tools/vhsm-server.js build/Release/vhsm_netlink.node build/Release/vhsm_ecdsa.node node_modules/better-sqlite3/package.json; do
    [ -e "$SRC/$f" ] || die "$SRC/$f is missing: build first (npm ci && npm run build)"
  done
  local stage=$ROOT$PREFIX.new
  remove "$PREFIX.new"
  run mkdir -p "$stage/build/Release" "$stage/packaging" "$stage/docs"
  run cp "$SRC/package.json" "$SRC/package-lock.json" "$stage/"
  run cp -r "$SRC/dist" "$stage/dist"
  run rm -rf "$stage/dist/test" "$stage/dist/bench"
  run chmod 0755 "$stage/dist/tools/vhsm.js" "$stage/dist/tools/vhsm-admin.js" "$stage/dist/tools/vhsmctl.js" "$stage/dist/tools/vhsm-server.js"
  run cp "$SRC/build/Release/vhsm_netlink.node" "$SRC/build/Release/vhsm_ecdsa.node" "$stage/build/Release/"
  # Only the packages that run (npm ls --omit=dev): the test and build
  # tooling stays in the checkout. A nested node_modules comes with its parent.
  local pkgs p
  if [ -n "$DRY" ]; then pkgs=; say "+ copy the production packages (npm ls --omit=dev) to $stage/node_modules"
  else pkgs=$(production_packages) || pkgs=
  fi
  if [ -n "$DRY" ]; then
    :
  elif [ -n "$pkgs" ]; then
    for p in $pkgs; do
      mkdir -p "$stage/node_modules/$(dirname "$p")" && cp -r "$SRC/node_modules/$p" "$stage/node_modules/$p"
    done
  else
    # npm missing or unhappy with the tree: copy it all, then let npm prune try.
    run cp -r "$SRC/node_modules" "$stage/node_modules"
    if command -v npm >/dev/null && [ -z "$DRY" ]; then
      (cd "$stage" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) || true
    fi
  fi
  for f in lib lxc docker nspawn; do run cp -r "$SRC/packaging/$f" "$stage/packaging/$f"; done
  [ ! -e "$SRC/docs/install.md" ] || run cp "$SRC/docs/install.md" "$stage/docs/"
  # Swap in one step; running tools keep their open files.
  remove "$PREFIX.old"
  if [ -e "$ROOT$PREFIX" ]; then run mv "$ROOT$PREFIX" "$ROOT$PREFIX.old"; fi
  run mv "$stage" "$ROOT$PREFIX"
  remove "$PREFIX.old"

  local b
  run mkdir -p "$ROOT/usr/local/bin"
  for b in "${BINARIES[@]}"; do run ln -sfn "$PREFIX/dist/tools/$b.js" "$ROOT/usr/local/bin/$b"; done

  say "== container binding"
  put_new "$SRC/packaging/ctids.example" /etc/vhsm/ctids 0644
  put "$SRC/packaging/docker/vhsm-docker-bind.service" /usr/local/lib/systemd/system/vhsm-docker-bind.service 0644
}

uninstall_tools() {
  say "== tools"
  local b
  if systemd_running && systemctl is-enabled vhsm-docker-bind.service >/dev/null 2>&1; then
    run systemctl disable --now vhsm-docker-bind.service
  fi
  for b in "${BINARIES[@]}"; do remove "/usr/local/bin/$b"; done
  remove "$PREFIX" "$PREFIX.new" "$PREFIX.old" /usr/local/lib/systemd/system/vhsm-docker-bind.service
}

# --- pkcs11 ---------------------------------------------------------------
# The multiarch triplet p11-kit's module directory is named after (x86_64-linux-gnu).
multiarch() {
  local m
  m=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null) || m=$(gcc -print-multiarch 2>/dev/null) || m=
  [ -n "$m" ] || die "cannot tell the multiarch triplet (install dpkg-dev or gcc)"
  printf '%s\n' "$m"
}

install_pkcs11() {
  local dir
  dir=/usr/lib/$(multiarch)/pkcs11
  say "== PKCS#11 module in $dir"
  [ -e "$SRC/build/pkcs11/libvhsm-pkcs11.so" ] || die "$SRC/build/pkcs11/libvhsm-pkcs11.so is missing: build first (npm ci && npm run build)"
  put "$SRC/build/pkcs11/libvhsm-pkcs11.so" "$dir/libvhsm-pkcs11.so" 0644
  put "$SRC/packaging/p11-kit/vhsm.module" /usr/share/p11-kit/modules/vhsm.module 0644
}

uninstall_pkcs11() {
  say "== PKCS#11 module"
  remove "/usr/lib/$(multiarch)/pkcs11/libvhsm-pkcs11.so" /usr/share/p11-kit/modules/vhsm.module
}

# --- server ---------------------------------------------------------------
install_server() {
  say "== server (user vhsm, /var/lib/vhsm, vhsm-server.service)"
  if live; then
    if ! getent passwd vhsm >/dev/null; then
      run useradd --system --user-group --home-dir /var/lib/vhsm --no-create-home --shell /usr/sbin/nologin --comment "VHSM server" vhsm
    fi
    if [ ! -d /var/lib/vhsm ]; then run install -d -m 0700 -o vhsm -g vhsm /var/lib/vhsm; fi
  elif [ ! -d "$ROOT/var/lib/vhsm" ]; then
    run install -d -m 0700 "$ROOT/var/lib/vhsm"
  fi
  put_new "$SRC/packaging/vhsm-server.json" /etc/vhsm/server.json 0644
  put "$SRC/packaging/systemd/vhsm-server.service" /usr/local/lib/systemd/system/vhsm-server.service 0644
}

uninstall_server() {
  say "== server"
  if systemd_running && systemctl is-enabled vhsm-server.service >/dev/null 2>&1; then
    run systemctl disable --now vhsm-server.service
  fi
  remove /usr/local/lib/systemd/system/vhsm-server.service
  say "  kept: /etc/vhsm, /var/lib/vhsm (the key store) and the user vhsm; remove them by hand if you mean it"
}

# --- main -----------------------------------------------------------------
[ -z "$DRY" ] || say "(dry run: nothing is changed)"
if [ -n "$UNINSTALL" ]; then
  # Uninstall takes away every part that is there, whatever the part options say.
  uninstall_server
  uninstall_pkcs11
  uninstall_tools
  uninstall_module
else
  [ -z "$WANT_MODULE" ] || install_module
  [ -z "$WANT_TOOLS" ] || install_tools
  [ -z "$WANT_PKCS11" ] || install_pkcs11
  [ -z "$WANT_SERVER" ] || install_server
fi
if systemd_running; then run systemctl daemon-reload; fi
say "== done"
