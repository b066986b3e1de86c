#!/bin/bash
# The demo, inside the VM (see scripts/demo.mjs): what an operator and an
# application would type, step by step. Containers are network namespaces.
set -euo pipefail
ROOT=$(pwd)
vhsmctl()    { node "$ROOT/dist/tools/vhsmctl.js" "$@"; }
vhsm_admin() { node "$ROOT/dist/tools/vhsm-admin.js" --db "$DB" "$@"; }
in_ct()      { local ct=$1; shift; ip netns exec "$ct" "$@"; }
vhsm()       { local ct=$1; shift; in_ct "$ct" node "$ROOT/dist/tools/vhsm.js" --user alice --password-file "$PWFILE" "$@"; }
n=0
START=$(date +%s)
step() { n=$((n + 1)); printf '\n\033[1m[%d] %s\033[0m  (+%ds)\n' "$n" "$*" $(($(date +%s) - START)); }
show() { printf '  $ %s\n' "$*"; }

WORK=$(mktemp -d /tmp/vhsm-demo.XXXXXX)
DB=$WORK/vhsm.db
PWFILE=$WORK/alice.password          # a file, never argv: passwords stay out of ps
umask 077
printf 'correct horse battery staple\n' > "$PWFILE"
ITER=${VHSM_DEMO_ITERATIONS:-50000}

step "Load the transport module; the VHSM container will be CTID 412"
show "insmod vhsm_transport.ko vhsm_veid=412"
insmod "$VHSM_MODULE" vhsm_veid=412
dmesg | grep vhsm_transport | tail -n 1 | sed 's/^/  /'

step "Create three containers (network namespaces): vhsm, app1, app2"
for ct in vhsm app1 app2; do ip netns add "$ct"; ip -n "$ct" link set lo up; done
ip netns list | sed 's/^/  /'

step "Host admin binds each container to a CTID"
show "vhsmctl bind --ctid 412 --netns /run/netns/vhsm   (and 101 app1, 102 app2)"
vhsmctl bind --ctid 412 --netns /run/netns/vhsm >/dev/null
vhsmctl bind --ctid 101 --netns /run/netns/app1 >/dev/null
vhsmctl bind --ctid 102 --netns /run/netns/app2 >/dev/null
vhsmctl list | sed 's/^/  /'

step "In the vhsm container: create the key store and user alice, allowed only in app1 (CTID 101)"
show "vhsm-admin init && vhsm-admin user add alice --ctid 101 --password-stdin"
echo "  (this demo derives keys with $ITER PBKDF2 iterations to keep the emulated VM quick; the default is 600,000)"
in_ct vhsm node "$ROOT/dist/tools/vhsm-admin.js" --db "$DB" init >/dev/null
(cat "$PWFILE" "$PWFILE") | in_ct vhsm node "$ROOT/dist/tools/vhsm-admin.js" --db "$DB" user add alice --ctid 101 --iterations "$ITER" --password-stdin >/dev/null
vhsm_admin user list | sed 's/^/  /'

step "Start vhsm-server in the vhsm container"
show "ip netns exec vhsm vhsm-server --db $DB &"
ip netns exec vhsm node "$ROOT/dist/tools/vhsm-server.js" --db "$DB" 2> "$WORK/server.log" &
SERVER=$!
# It logs "vhsm-server started" once registered with the module.
for _ in $(seq 1 600); do
  grep -q 'vhsm-server started' "$WORK/server.log" && break
  kill -0 "$SERVER" 2>/dev/null || { echo "  !! vhsm-server exited:"; cat "$WORK/server.log"; exit 1; }
  sleep 0.1
done
vhsmctl status | sed -n '1s/^/  /p'

step "app1: generate an Ed25519 key that never leaves the server"
show "vhsm keys generate --type ed25519 --id release-signing"
vhsm app1 keys generate --type ed25519 --id release-signing | sed 's/^/  key id: /'

step "app1: sign a message with it"
printf 'release v1.0.0 sha256=9f86d081884c7d65\n' > "$WORK/message.txt"
show "vhsm sign release-signing --in message.txt --encoding raw --out message.sig"
vhsm app1 sign release-signing --in "$WORK/message.txt" --encoding raw --out "$WORK/message.sig"
echo "  signature: $(od -An -tx1 -v "$WORK/message.sig" | tr -d ' \n' | cut -c1-64)…"

step "app1: export the public key; openssl verifies the signature outside VHSM"
show "vhsm keys pubkey release-signing --format pem > release.pem"
vhsm app1 keys pubkey release-signing --format pem > "$WORK/release.pem"
sed 's/^/  /' "$WORK/release.pem"
show "openssl pkeyutl -verify -pubin -inkey release.pem -rawin -in message.txt -sigfile message.sig"
openssl pkeyutl -verify -pubin -inkey "$WORK/release.pem" -rawin -in "$WORK/message.txt" -sigfile "$WORK/message.sig" | sed 's/^/  /'

step "app2: the same user and password, from a container alice is not allowed in"
show "ip netns exec app2 vhsm login"
set +e
vhsm app2 login 2>&1 | sed 's/^/  /'
status=${PIPESTATUS[0]}
set -e
echo "  exit status $status"
if [ "$status" -eq 0 ]; then echo "  !! app2 was let in: the demo failed"; exit 1; fi

step "The audit log (hash-chained; vhsm-admin audit verify checks it)"
vhsm_admin audit show --limit 20 | sed 's/^/  /'
vhsm_admin audit verify | sed 's/^/  /'

step "Transport counters as the host admin sees them"
vhsmctl status | sed 's/^/  /'

step "Stop the server (SIGTERM: answers what is in flight, unregisters, closes the DB)"
kill -TERM "$SERVER"; wait "$SERVER"
echo "  vhsm-server exited with status $?"
rmmod vhsm_transport
printf '\n\033[1mDemo complete: the key stayed in the vhsm container, app1 signed with it, openssl verified, app2 was refused.\033[0m\n'
