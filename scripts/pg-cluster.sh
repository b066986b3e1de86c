#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benches: initdb + pg_ctl in DIR,
# listening only on a Unix socket in DIR (no TCP), run as an unprivileged
# user (postgres refuses root: as root we run it as `nobody`).
#
#   scripts/pg-cluster.sh start DIR   prints the connection URL on stdout
#   scripts/pg-cluster.sh stop DIR    stops it (DIR is left for the caller to remove)
#   scripts/pg-cluster.sh restart DIR fast restart (clients see their connections drop)
#
# The superuser is `vhsm`, trusted on the socket (which only DIR's owner can
# reach), and the database `vhsm` exists.
set -euo pipefail
cmd=${1:?usage: pg-cluster.sh start|stop|restart DIR}
dir=${2:?usage: pg-cluster.sh start|stop|restart DIR}
bin=${PG_BIN:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
[ -x "$bin/pg_ctl" ] || { echo "pg-cluster: no PostgreSQL server binaries (apt-get install postgresql-15)" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}
data="$dir/data"
case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown nobody:nogroup "$dir"; fi
    if [ ! -d "$data" ]; then
      as_owner "$bin/initdb" -D "$data" -U vhsm --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # The socket lives in DIR; listen_addresses='' means no TCP at all.
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=200 ${PG_EXTRA_OPTS:-}" start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    if ! as_owner "$bin/psql" -h "$dir" -U vhsm -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'vhsm'" | grep -q 1; then
      as_owner "$bin/psql" -h "$dir" -U vhsm -d postgres -qc 'CREATE DATABASE vhsm' >/dev/null
    fi
    # "localhost" only makes the URL parse; the host parameter (the socket directory) wins.
    echo "postgres://vhsm@localhost/vhsm?host=$dir"
    ;;
  stop)
    if [ -d "$data" ]; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true; fi
    ;;
  restart)
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 restart \
      -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=200 ${PG_EXTRA_OPTS:-}" -l "$dir/server.log" >/dev/null
    ;;
  *) echo "usage: pg-cluster.sh start|stop|restart DIR" >&2; exit 2 ;;
esac
