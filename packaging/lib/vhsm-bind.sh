# shellcheck shell=sh
# Shared by the container bind scripts (lxc/vhsm-bind, docker/vhsm-docker-bind,
# nspawn/vhsm-machine-bind): look a container's CTID up, bind the network
# namespace of one of its processes, unbind it. POSIX sh; sourced, not run.
#
# Environment:
#   VHSM_CTIDS   the map file (default /etc/vhsm/ctids)
#   VHSMCTL      the vhsmctl command (default: vhsmctl on PATH)
#
# The map file: one container per line, "NAME CTID"; '#' starts a comment.
# NAME may be qualified by the manager ("lxc:web", "docker:web", "machine:web");
# a qualified line wins over a plain one, so the same name can get different
# CTIDs under two managers.

VHSM_CTIDS=${VHSM_CTIDS:-/etc/vhsm/ctids}
VHSMCTL=${VHSMCTL:-vhsmctl}
# Hooks run with whatever PATH their manager has; the tools live here.
PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

vhsm_log() { printf '%s: %s\n' "${VHSM_PROG:-vhsm-bind}" "$*" >&2; }
vhsm_die() { vhsm_log "$*"; exit 1; }

# vhsm_valid_ctid N: N is a CTID (1..4294967295, decimal, no sign).
vhsm_valid_ctid() {
	case $1 in '' | *[!0-9]* | 0*) return 1 ;; esac
	[ "${#1}" -le 10 ] && [ "$1" -le 4294967295 ]
}

# vhsm_ctid_lookup MANAGER NAME: prints NAME's CTID from the map file; status 1
# if it has none, 2 if the map file is broken (the message says where).
vhsm_ctid_lookup() {
	[ -r "$VHSM_CTIDS" ] || return 1
	awk -v q="$1:$2" -v n="$2" -v file="$VHSM_CTIDS" '
		{ sub(/#.*/, "") }
		NF == 0 { next }
		NF != 2 || $2 !~ /^[1-9][0-9]*$/ || length($2) > 10 || (length($2) == 10 && $2 > "4294967295") {
			printf "%s:%d: expected \"NAME CTID\" with CTID 1..4294967295\n", file, NR > "/dev/stderr"; bad = 1; exit
		}
		$1 == q { qualified = $2 }
		$1 == n { plain = $2 }
		END {
			if (bad) exit 2
			if (qualified != "") { print qualified; exit 0 }
			if (plain != "") { print plain; exit 0 }
			exit 1
		}' "$VHSM_CTIDS"
}

# vhsm_netns_ino PATH: the inode of a network namespace file (identity while it lives).
vhsm_netns_ino() { stat -L -c %i "$1" 2>/dev/null; }

# vhsm_bind_pid NAME CTID PID: binds the network namespace of PID to CTID.
# Refuses a process that shares this (the host's) network namespace: binding
# the host to a CTID would hand every host process that container's identity.
vhsm_bind_pid() {
	vhsm_valid_ctid "$2" || vhsm_die "$1: bad CTID '$2' (1..4294967295)"
	case $3 in '' | *[!0-9]*) vhsm_die "$1: bad PID '$3'" ;; esac
	ct_ino=$(vhsm_netns_ino "/proc/$3/ns/net") || vhsm_die "$1: no process $3 (did the container stop?)"
	host_ino=$(vhsm_netns_ino /proc/self/ns/net)
	[ "$ct_ino" != "$host_ino" ] ||
		vhsm_die "$1: process $3 shares the host's network namespace; give the container its own network (not host networking) to use VHSM"
	"$VHSMCTL" bind --ctid "$2" --pid "$3" >/dev/null || vhsm_die "$1: vhsmctl bind --ctid $2 --pid $3 failed"
	vhsm_log "$1: bound CTID $2 (pid $3, netns inode $ct_ino)"
}

# vhsm_bound_ino CTID: prints the netns inode CTID is bound to; status 1 if unbound.
vhsm_bound_ino() {
	"$VHSMCTL" list --json | node -e '
		let s = "";
		process.stdin.on("data", (d) => (s += d)).on("end", () => {
			const b = JSON.parse(s).find((x) => String(x.ctid) === process.argv[1]);
			if (!b) process.exit(1);
			console.log(b.netnsIno);
		});' "$1"
}

# vhsm_unbind NAME CTID [NETNS_PATH]: forgets CTID's binding. With NETNS_PATH
# (a namespace the caller holds open), only if CTID is still bound to that
# namespace: a restarted container may already be bound again. A CTID that is
# no longer bound (its namespace died) is not an error.
vhsm_unbind() {
	vhsm_valid_ctid "$2" || vhsm_die "$1: bad CTID '$2' (1..4294967295)"
	if ! bound=$(vhsm_bound_ino "$2"); then
		vhsm_log "$1: CTID $2 is not bound (its namespace is gone): nothing to do"
		return 0
	fi
	if [ -n "${3:-}" ]; then
		ns_ino=$(vhsm_netns_ino "$3") || ns_ino=
		if [ -n "$ns_ino" ] && [ "$bound" != "$ns_ino" ]; then
			vhsm_log "$1: CTID $2 is bound to another namespace (inode $bound, not $ns_ino): left alone"
			return 0
		fi
	fi
	if ! "$VHSMCTL" unbind --ctid "$2" >/dev/null; then
		vhsm_bound_ino "$2" >/dev/null || return 0 # it went away meanwhile
		vhsm_die "$1: vhsmctl unbind --ctid $2 failed"
	fi
	vhsm_log "$1: unbound CTID $2"
}
