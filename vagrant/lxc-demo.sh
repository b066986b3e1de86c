#!/bin/bash
# VHSM with real LXC containers: creates the containers vhsm, app1 and app2,
# starts them with the VHSM hook (packaging/lxc/vhsm-bind) binding them to
# their CTIDs, runs vhsm-server in vhsm the way vhsm-server.service does (an
# unprivileged user holding only CAP_NET_ADMIN, the packaged config), signs in
# app1, is refused in app2, restarts app1 (stop hook unbinds, start hook
# binds the new namespace), and stops everything.
#
# Run as root with vhsm_transport loaded (vhsm_veid=412) and a CTID map with
# "vhsm 412", "app1 101" and "app2 102". The Vagrant VM runs it
# (vagrant/provision.sh) and so does the QEMU test VM
# (test/vm/packaging-lxc.test.ts): the same script, two VMs.
#
# The containers' root file systems are overlays over this machine's root, so
# node and the VHSM tools are the host's: fine for a test VM; real containers
# come from a template and get the tools installed (docs/install.md).
#
# Environment:
#   VHSM_LXC_PATH   where the containers live (default /var/lib/lxc)
#   VHSM_CTIDS      the CTID map the hook reads (default /etc/vhsm/ctids)
#   VHSM_HOOK       the hook (default: packaging/lxc/vhsm-bind next to this script)
#   VHSM_TOOLS      directory with vhsm.js, vhsm-admin.js, vhsmctl.js,
#                   vhsm-server.js, visible at the same path in the containers
#                   (default: dist/tools of this checkout)
#   VHSM_SERVER_CONFIG  the server's config (default packaging/vhsm-server.json)
#   VHSM_KEEP=1     leave the containers (stopped) instead of destroying them
#
# Prints "ok - WHAT" or "not ok - WHAT" per check and ends with
# "N passed, N failed"; exits 0 only if every check passed.
set -uo pipefail

HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LXCPATH=${VHSM_LXC_PATH:-/var/lib/lxc}
export VHSM_CTIDS=${VHSM_CTIDS:-/etc/vhsm/ctids}
HOOK=${VHSM_HOOK:-$REPO/packaging/lxc/vhsm-bind}
TOOLS=${VHSM_TOOLS:-$REPO/dist/tools}
SERVER_CONFIG=${VHSM_SERVER_CONFIG:-$REPO/packaging/vhsm-server.json}
NODE=$(command -v node)
CONTAINERS=(vhsm app1 app2)
PASSWORD='correct horse battery staple'
SERVER_UID=64055 # the "vhsm" user of the unit; no passwd entry needed
passed=0
failed=0

ok() { passed=$((passed + 1)); printf 'ok - %s\n' "$*"; }
not_ok() { failed=$((failed + 1)); printf 'not ok - %s\n' "$*"; }
check() { # check WHAT COMMAND...: ok if COMMAND succeeds
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$what"; else not_ok "$what"; printf '%s\n' "$out" | sed 's/^/#   /'; fi
}
finish() {
  printf '%d passed, %d failed\n' "$passed" "$failed"
  [ "$failed" -eq 0 ]
}
abort() { not_ok "$*"; cleanup; finish; exit 1; }

# lxc-attach opens a terminal when any of its stdio is one; commands here
# take their input from redirections only.
[ ! -t 0 ] || exec </dev/null

# Host tools, called the way the hook calls vhsmctl.
WORK=$(mktemp -d /tmp/vhsm-lxc-demo.XXXXXX)
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nexec %s %s/vhsmctl.js "$@"\n' "$NODE" "$TOOLS" > "$WORK/bin/vhsmctl"
chmod +x "$WORK/bin/vhsmctl"
export PATH="$WORK/bin:$PATH"
export VHSMCTL=vhsmctl

lxc() { local cmd=$1; shift; "lxc-$cmd" -P "$LXCPATH" "$@"; }
# in CT CMD...: runs CMD in container CT, stdin passed through (no terminal).
in_ct() {
  local ct=$1; shift
  lxc attach -n "$ct" --clear-env --set-var PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --set-var HOME=/root -- "$@"
}
ct_pid() { lxc info -n "$1" -pH; }
bound_ino() { vhsmctl list --json | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const b=JSON.parse(s).find(x=>x.ctid==process.argv[1]);console.log(b?b.netnsIno:"none")})' "$1"; }
bound_cookie() { vhsmctl list --json | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const b=JSON.parse(s).find(x=>x.ctid==process.argv[1]);console.log(b?b.netnsCookie:"none")})' "$1"; }
server_ctid() { vhsmctl status --json | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).server?.ctid ?? "none"))'; }

cleanup() {
  local ct
  for ct in "${CONTAINERS[@]}"; do
    [ -f "$LXCPATH/$ct/config" ] || continue
    if [ "$(lxc info -n "$ct" -sH 2>/dev/null)" = RUNNING ]; then lxc stop -n "$ct" -k >/dev/null 2>&1; fi
    if [ -z "${VHSM_KEEP:-}" ] && [ -f "$LXCPATH/$ct/.vhsm-demo" ]; then rm -rf "${LXCPATH:?}/$ct"; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- preconditions ---------------------------------------------------------
[ "$(id -u)" -eq 0 ] || abort "run as root"
[ "$(cat /sys/module/vhsm_transport/parameters/vhsm_veid 2>/dev/null)" = 412 ] ||
  abort "vhsm_transport must be loaded with vhsm_veid=412 (modprobe vhsm_transport with packaging/modprobe.d/vhsm.conf)"
command -v lxc-start >/dev/null || abort "LXC is not installed (apt-get install lxc)"
for ct in "${CONTAINERS[@]}"; do
  [ ! -e "$LXCPATH/$ct" ] || abort "$LXCPATH/$ct exists already: not overwriting a container"
done
modprobe overlay 2>/dev/null || true

# A checkout under /tmp or /run (CI clones into /tmp) would be hidden by the
# containers' own tmpfs there: bind it back in, read-only.
repo_mount_entry() {
  case "$REPO" in
  /tmp/* | /run/*) echo "lxc.mount.entry = $REPO ${REPO#/} none bind,ro,create=dir 0 0" ;;
  esac
}

# --- containers --------------------------------------------------------------
# app2 uses LXC's old hook calling convention (version 0: NAME SECTION TYPE as
# arguments), the others version 1 (environment only): the hook takes both.
for ct in "${CONTAINERS[@]}"; do
  mkdir -p "$LXCPATH/$ct/upper" "$LXCPATH/$ct/rootfs"
  touch "$LXCPATH/$ct/.vhsm-demo"
  version=1
  [ "$ct" != app2 ] || version=0
  cat > "$LXCPATH/$ct/config" <<EOF
lxc.uts.name = $ct
lxc.rootfs.path = overlay:/:$LXCPATH/$ct/upper
lxc.net.0.type = empty
lxc.mount.auto = proc:mixed sys:ro cgroup:mixed
lxc.mount.entry = tmpfs tmp tmpfs defaults,create=dir 0 0
lxc.mount.entry = tmpfs run tmpfs defaults,create=dir 0 0
$(repo_mount_entry)
lxc.autodev = 1
lxc.console.path = none
lxc.tty.max = 0
lxc.pty.max = 0
lxc.apparmor.profile = unconfined
lxc.init.cmd = /bin/sleep infinity
lxc.hook.version = $version
lxc.hook.start-host = $HOOK
lxc.hook.stop = $HOOK
EOF
done

for ct in "${CONTAINERS[@]}"; do
  check "lxc-start $ct (start-host hook binds it)" lxc start -n "$ct" -l INFO -o "$LXCPATH/$ct/lxc.log"
done
for ct in vhsm:412 app1:101 app2:102; do
  name=${ct%:*} ctid=${ct#*:}
  pid=$(ct_pid "$name")
  want=$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)
  got=$(bound_ino "$ctid")
  if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "CTID $ctid is bound to $name's network namespace (inode $got)"
  else not_ok "CTID $ctid is bound to $name's network namespace (want inode ${want:-?}, vhsmctl says $got)"; sed 's/^/#   /' "$LXCPATH/$name/lxc.log" | grep -i -E 'hook|vhsm|error' | tail -n 20
  fi
done

# --- the server, in vhsm, with the unit's privileges ------------------------
# setpriv stands in for systemd: User=vhsm, CapabilityBoundingSet= and
# AmbientCapabilities=CAP_NET_ADMIN, NoNewPrivileges=yes.
in_ct vhsm sh -c "mkdir -p /etc/vhsm /var/lib/vhsm && chown $SERVER_UID:$SERVER_UID /var/lib/vhsm && chmod 0700 /var/lib/vhsm && cat > /etc/vhsm/server.json" < "$SERVER_CONFIG"
check "vhsm-admin init as the server's user (the unit's ExecStartPre)" \
  in_ct vhsm env VHSM_DB=/var/lib/vhsm/vhsm.db setpriv --reuid=$SERVER_UID --regid=$SERVER_UID --clear-groups "$NODE" "$TOOLS/vhsm-admin.js" init
check "vhsm-admin user add alice, allowed in CTID 101 only" \
  in_ct vhsm env VHSM_DB=/var/lib/vhsm/vhsm.db setpriv --reuid=$SERVER_UID --regid=$SERVER_UID --clear-groups \
  "$NODE" "$TOOLS/vhsm-admin.js" user add alice --ctid 101 --iterations 1000 --password-stdin <<<"$PASSWORD
$PASSWORD"
# Without CAP_NET_ADMIN the module refuses registration: what the unit's capability is for.
out=$(in_ct vhsm setpriv --reuid=$SERVER_UID --regid=$SERVER_UID --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \
  "$NODE" "$TOOLS/vhsm-server.js" --config /etc/vhsm/server.json 2>&1)
status=$?
if [ "$status" -eq 9 ]; then ok "without CAP_NET_ADMIN, vhsm-server cannot register (exit 9)"; else not_ok "without CAP_NET_ADMIN, vhsm-server exits 9 (got $status: $out)"; fi
in_ct vhsm sh -c "setpriv --reuid=$SERVER_UID --regid=$SERVER_UID --clear-groups --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin \
  --bounding-set=-all,+net_admin --no-new-privs $NODE $TOOLS/vhsm-server.js --config /etc/vhsm/server.json \
  </dev/null >/dev/null 2>/run/vhsm-server.log & echo \$! > /run/vhsm-server.pid"
deadline=$((SECONDS + 120))
until [ "$(server_ctid)" = 412 ] || [ $SECONDS -ge $deadline ]; do sleep 0.5; done
if [ "$(server_ctid)" = 412 ]; then ok "vhsm-server (uid $SERVER_UID, only CAP_NET_ADMIN, packaged config) registered from CTID 412"
else not_ok "vhsm-server registered from CTID 412"; in_ct vhsm cat /run/vhsm-server.log | sed 's/^/#   /'; fi

# --- a client in app1, a refusal in app2 -------------------------------------
vhsm_in() { local ct=$1; shift; in_ct "$ct" "$NODE" "$TOOLS/vhsm.js" --user alice --password-stdin "$@"; }
check "app1: vhsm keys generate --type ed25519" vhsm_in app1 keys generate --type ed25519 --id lxc-demo <<<"$PASSWORD"
printf 'signed in an LXC container\n' > "$WORK/msg"
in_ct app1 sh -c 'cat > /root/msg' < "$WORK/msg"
vhsm_in app1 sign lxc-demo --in /root/msg --encoding base64 <<<"$PASSWORD" | base64 -d > "$WORK/msg.sig"
vhsm_in app1 keys pubkey lxc-demo --format pem <<<"$PASSWORD" > "$WORK/pub.pem"
check "app1: the signature verifies with openssl on the host" \
  openssl pkeyutl -verify -pubin -inkey "$WORK/pub.pem" -rawin -in "$WORK/msg" -sigfile "$WORK/msg.sig"
out=$(vhsm_in app2 login <<<"$PASSWORD" 2>&1)
status=$?
if [ "$status" -ne 0 ] && printf '%s' "$out" | grep -q 'may not log in from this container'; then ok "app2: the same login is refused (exit $status)"
else not_ok "app2: the same login is refused (exit $status: $out)"; fi

# --- restart: the stop hook unbinds, the start hook binds the new namespace --
old=$(bound_cookie 101)
check "lxc-stop app1" lxc stop -n app1 -k
# -k skips the clean shutdown but the stop hook still runs.
check "after the stop hook, CTID 101 is not bound" test "$(bound_ino 101)" = none
check "lxc-start app1 again" lxc start -n app1 -l INFO -o "$LXCPATH/app1/lxc.log"
# Inode numbers are reused; the namespace cookie never is during a boot.
new=$(bound_cookie 101)
want=$(stat -L -c %i "/proc/$(ct_pid app1)/ns/net")
got=$(bound_ino 101)
if [ "$got" = "$want" ] && [ "$new" != none ] && [ "$new" != "$old" ]; then ok "CTID 101 is bound to app1's new namespace (cookie $old -> $new)"
else not_ok "CTID 101 bound to app1's new namespace (inode: want $want, got $got; cookie $old -> $new)"; fi
check "app1: alice logs in again after the restart" vhsm_in app1 login <<<"$PASSWORD"

# --- stop everything -----------------------------------------------------------
# shellcheck disable=SC2016 # expanded in the container
in_ct vhsm sh -c 'kill -TERM "$(cat /run/vhsm-server.pid)"'
deadline=$((SECONDS + 60))
until [ "$(server_ctid)" = none ] || [ $SECONDS -ge $deadline ]; do sleep 0.5; done
check "SIGTERM: vhsm-server unregistered" test "$(server_ctid)" = none
check "the audit chain verifies" in_ct vhsm env VHSM_DB=/var/lib/vhsm/vhsm.db setpriv --reuid=$SERVER_UID --regid=$SERVER_UID --clear-groups "$NODE" "$TOOLS/vhsm-admin.js" audit verify
for ct in "${CONTAINERS[@]}"; do lxc stop -n "$ct" -k >/dev/null 2>&1; done
check "all stopped: no CTID is bound any more" test "$(vhsmctl list --json | tr -d ' \n')" = "[]"

cleanup
trap - EXIT
finish
