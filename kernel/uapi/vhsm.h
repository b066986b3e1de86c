/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR MIT) */
/*
 * VHSM transport: the generic netlink ABI between vhsm_transport.ko,
 * the VHSM server, its clients and the host admin tool (vhsmctl).
 *
 * This header is the single description of the ABI in C; kernel/vhsm.yaml
 * describes the same in YNL form and scripts/gen-uapi.mjs derives the
 * TypeScript constants from this file.  Change all three together.
 *
 * Message flow (all messages are genl, family "vhsm", version 2):
 *
 *   client   --REQUEST{PAYLOAD}--------------------------------------> module
 *
 *   module   --DELIVER{REQ_ID,CTID,NETNS_COOKIE,PID,PROC_START,UID,GID,
 *                      PAYLOAD}-------------------------------------> server
 *
 *   server   --REPLY{REQ_ID,PAYLOAD}----------------------------------> module
 *
 *   module   --RESPONSE{STATUS=0,PAYLOAD}-----------------------------> client
 *
 *   module   --CANCEL{REQ_ID...}----------------------------------------> server
 *
 * The stamps are the sender's, computed by the kernel in the sending task:
 * PID, UID and GID as the sender's *container* sees them (the pid namespace
 * recorded when the admin bound the CTID, the user namespace that owns the
 * container's netns), never as namespaces the sender made for itself; a
 * sender that container's pid namespace cannot see is refused.  PROC_START
 * (the process's start time) makes (PID, PROC_START) unique for the boot.
 *
 * A REQUEST refused at once is answered by an NLMSG_ERROR (with extack)
 * carrying the client's nlmsg_seq.  A request that fails later (timeout,
 * server gone) is answered by a RESPONSE with STATUS = a positive errno and
 * no PAYLOAD.  RESPONSE messages carry the client's original nlmsg_seq and
 * nothing else that identifies the request: clients match on the seq.
 *
 * A request stays charged to its container until the server replies or its
 * deadline passes, even if the client's socket is closed meanwhile; the
 * server is then told with a CANCEL naming the requests it may drop (it
 * still replies, with any payload, to release them early).
 */
#ifndef _UAPI_LINUX_VHSM_H
#define _UAPI_LINUX_VHSM_H

#define VHSM_GENL_NAME		"vhsm"
#define VHSM_GENL_VERSION	2

/* Largest PAYLOAD accepted in a REQUEST or a REPLY (bytes). */
#define VHSM_PAYLOAD_MAX	32768

enum vhsm_cmd {
	VHSM_CMD_UNSPEC,

	/* Host admin (CAP_NET_ADMIN, initial network namespace only). */
	VHSM_CMD_CT_BIND,	/* CTID + (PID | NETNS_FD): bind a netns to a CTID */
	VHSM_CMD_CT_UNBIND,	/* CTID: forget that CTID's binding */
	VHSM_CMD_CT_GET,	/* dump: one message per binding */
	VHSM_CMD_STATS_GET,	/* counters and the registered server */

	/* VHSM server (CAP_NET_ADMIN over the netns bound to vhsm_veid). */
	VHSM_CMD_SERVER_REGISTER,
	VHSM_CMD_SERVER_UNREGISTER,
	VHSM_CMD_REPLY,		/* server -> kernel: REQ_ID + PAYLOAD */
	VHSM_CMD_DELIVER,	/* kernel -> server: stamped request */

	/* Clients (any bound netns). */
	VHSM_CMD_REQUEST,	/* client -> kernel: PAYLOAD only */
	VHSM_CMD_RESPONSE,	/* kernel -> client: STATUS [+ PAYLOAD] */

	VHSM_CMD_CANCEL,	/* kernel -> server: REQ_IDs whose client is gone */

	__VHSM_CMD_MAX,
	VHSM_CMD_MAX = (__VHSM_CMD_MAX - 1)
};

enum vhsm_attr {
	VHSM_A_UNSPEC,
	VHSM_A_PAD,		/* padding for 64-bit attributes */
	VHSM_A_CTID,		/* u32, container id; 0 is never a valid CTID */
	/*
	 * u32, a pid: BIND, in the admin's pid namespace; DELIVER, the
	 * sender's tgid as its container's pid namespace sees it
	 */
	VHSM_A_PID,
	VHSM_A_NETNS_FD,	/* u32, an fd of a /proc/PID/ns/net or /run/netns file */
	VHSM_A_NETNS_COOKIE,	/* u64, never reused during one boot */
	VHSM_A_NETNS_INO,	/* u32, for display only: inode numbers are reused */
	VHSM_A_REQ_ID,		/* u64, kernel-assigned, never reused during one load */
	VHSM_A_UID,		/* u32, sender's euid as its container's user ns sees it */
	VHSM_A_GID,		/* u32, sender's egid as its container's user ns sees it */
	VHSM_A_PAYLOAD,		/* binary, at most VHSM_PAYLOAD_MAX bytes */
	VHSM_A_STATUS,		/* u32, 0 or a positive errno */
	VHSM_A_PENDING,		/* u32, requests awaiting a reply */
	VHSM_A_STATS,		/* nest of enum vhsm_stat, each a u64 */
	VHSM_A_SERVER,		/* nest of enum vhsm_server_attr */
	/*
	 * u64, the sender process's start in ns since boot (CLOCK_BOOTTIME):
	 * with PID, unique during one boot
	 */
	VHSM_A_PROC_START,
	/* u32, BIND: a pid (admin's pid ns) whose pid namespace is the container's */
	VHSM_A_PIDNS_PID,
	VHSM_A_PIDNS_INO,	/* u32, for display only: inode numbers are reused */
	VHSM_A_QUEUED_BYTES,	/* u32, bytes of the server's queue charged to a CTID */

	__VHSM_A_MAX,
	VHSM_A_MAX = (__VHSM_A_MAX - 1)
};

/* Inside VHSM_A_SERVER: the registered server, absent if none. */
enum vhsm_server_attr {
	VHSM_SERVER_A_UNSPEC,
	VHSM_SERVER_A_PAD,
	VHSM_SERVER_A_CTID,		/* u32 */
	VHSM_SERVER_A_NETNS_COOKIE,	/* u64 */
	VHSM_SERVER_A_PID,		/* u32, tgid in the initial pid namespace */
	VHSM_SERVER_A_PORTID,		/* u32, netlink port of the server socket */

	__VHSM_SERVER_A_MAX,
	VHSM_SERVER_A_MAX = (__VHSM_SERVER_A_MAX - 1)
};

/* Inside VHSM_A_STATS: counters since the module was loaded, each a u64. */
enum vhsm_stat {
	VHSM_STAT_UNSPEC,
	VHSM_STAT_PAD,
	VHSM_STAT_REQUESTS,	/* REQUESTs received (with a PAYLOAD) */
	VHSM_STAT_FORWARDED,	/* REQUESTs delivered to the server */
	VHSM_STAT_REPLIES,	/* REPLY messages accepted from the server */
	VHSM_STAT_RESPONSES,	/* RESPONSEs delivered to clients (any status) */
	VHSM_STAT_UNBOUND,	/* refused: sender netns has no CTID (EACCES) */
	VHSM_STAT_NO_SERVER,	/* refused: no server registered (ECONNREFUSED) */
	VHSM_STAT_TOO_BIG,	/* refused: payload over VHSM_PAYLOAD_MAX (EMSGSIZE) */
	VHSM_STAT_SERVER_BUSY,	/* refused: server queue or global table full (EAGAIN) */
	VHSM_STAT_QUOTA,	/* refused: container's pending or byte quota (ENOBUFS) */
	VHSM_STAT_TIMEOUTS,	/* failed: deadline passed (ETIMEDOUT) */
	VHSM_STAT_SERVER_GONE,	/* failed: server went away (ECONNRESET) */
	VHSM_STAT_CLIENT_GONE,	/* finished after its client went away: nothing sent */
	VHSM_STAT_BAD_REPLY,	/* REPLY: unknown id (ENOENT), non-server (EPERM) */
	VHSM_STAT_UNDELIVERED,	/* RESPONSE could not be queued to the client */
	VHSM_STAT_FOREIGN_PID,	/* refused: sender not in its container's pid ns (EACCES) */
	VHSM_STAT_ORPHANED,	/* pending requests whose client socket went away */
	VHSM_STAT_CANCELS,	/* CANCEL messages queued to the server */

	__VHSM_STAT_MAX,
	VHSM_STAT_MAX = (__VHSM_STAT_MAX - 1)
};

#endif /* _UAPI_LINUX_VHSM_H */
