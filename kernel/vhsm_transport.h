/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VHSM transport: definitions shared by the files of vhsm_transport.ko.
 *
 * main.c     module parameters, counters, per-netns data, the
 *            NETLINK_URELEASE notifier, module init/exit
 * ct.c       containers: CTID bindings, their pid and user namespaces,
 *            the sender identity stamped on each request
 * pending.c  server registration, pending requests, charges, deadlines
 * netlink.c  the generic netlink family: policies, ops, messages
 *
 * Locking (outermost first):
 *   vhsm_bind_lock (mutex)   CTID bindings: vhsm_bindings, vhsm_net.ct
 *   vhsm_lock (spinlock, BH) server registration, every pending entry,
 *                            the charges of every container
 * Lookups of a namespace's container (every REQUEST) take neither: they
 * read vhsm_net.ct under RCU and take a reference.
 */
#ifndef _VHSM_TRANSPORT_H
#define _VHSM_TRANSPORT_H

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/pid_namespace.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/types.h>
#include <linux/user_namespace.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/sock.h>

#include "uapi/vhsm.h"

/* Bounds of the timeout_ms module parameter. */
#define VHSM_TIMEOUT_MIN_MS	10U
#define VHSM_TIMEOUT_MAX_MS	600000U

/**
 * struct vhsm_ct - a container: what its stamps mean, what it holds
 * @ref: references: the binding, each pending entry, each request in flight
 * @ctid: CTID bound by the host admin; 0 for the one shared by every
 *	unbound namespace (allow_unbound)
 * @pidns: the pid namespace stamped PIDs are in (referenced)
 * @userns: the user namespace stamped uids and gids are in (referenced):
 *	the one that owns the container's netns
 * @npending: requests charged to it, not yet answered or expired (vhsm_lock)
 * @queued: bytes of the server's receive queue charged to it (vhsm_lock)
 * @rcu: frees it after readers of vhsm_net.ct are done
 *
 * It outlives its binding and its namespace while requests are charged to
 * it: a client that closes its socket does not get its share back before
 * the server has answered or the deadline has passed.
 */
struct vhsm_ct {
	refcount_t ref;
	u32 ctid;
	struct pid_namespace *pidns;
	struct user_namespace *userns;
	unsigned int npending;
	unsigned int queued;
	struct rcu_head rcu;
};

/**
 * struct vhsm_net - per network namespace state (net_generic)
 * @net: the namespace this belongs to
 * @ct: its container while bound, else NULL; written under
 *	vhsm_bind_lock, read under RCU
 * @bind_node: entry on vhsm_bindings (sorted by CTID) while bound
 * @pending: pending requests whose client socket, in this namespace, is
 *	still open (vhsm_lock); such a socket holds the namespace
 */
struct vhsm_net {
	struct net *net;
	struct vhsm_ct __rcu *ct;
	struct list_head bind_node;
	struct list_head pending;
};

/**
 * struct vhsm_sender - who sent a request, as the kernel sees it
 * @ct: the sender's container (referenced)
 * @pid: its tgid in @ct's pid namespace, never 0
 * @uid: its euid in @ct's user namespace
 * @gid: its egid in @ct's user namespace
 * @proc_start: its thread group leader's start, CLOCK_BOOTTIME ns
 */
struct vhsm_sender {
	struct vhsm_ct *ct;
	u32 pid;
	u32 uid;
	u32 gid;
	u64 proc_start;
};

/* main.c */
extern unsigned int vhsm_veid;
extern bool vhsm_allow_unbound;
extern unsigned int vhsm_timeout_ms;
extern unsigned int vhsm_max_pending_per_ct;
extern unsigned int vhsm_max_pending;
extern unsigned int vhsm_ct_queue_share;

struct vhsm_net *vhsm_pernet(const struct net *net);
void vhsm_stat_inc(enum vhsm_stat stat);
u64 vhsm_stat_read(enum vhsm_stat stat);

static inline u64 vhsm_net_cookie(const struct net *net)
{
	return net->net_cookie;
}

/* ct.c */
extern struct mutex vhsm_bind_lock;
extern struct list_head vhsm_bindings;

void vhsm_ct_put(struct vhsm_ct *ct);
struct vhsm_ct *vhsm_ct_bound(struct vhsm_net *vn);
u32 vhsm_net_ctid(struct vhsm_net *vn);
int vhsm_ct_bind(struct net *net, struct pid_namespace *pidns, u32 ctid,
		 struct netlink_ext_ack *extack);
int vhsm_ct_unbind(u32 ctid, struct netlink_ext_ack *extack);
void vhsm_ct_net_exit(struct vhsm_net *vn);
int vhsm_sender_get(struct net *net, struct vhsm_sender *sender,
		    struct netlink_ext_ack *extack);

/* pending.c */

/**
 * struct vhsm_server_info - snapshot of the registered server
 * @ctid: CTID of its network namespace
 * @cookie: cookie of its network namespace
 * @tgid: thread group id in the initial pid namespace
 * @portid: netlink port id of its socket
 */
struct vhsm_server_info {
	u32 ctid;
	u64 cookie;
	u32 tgid;
	u32 portid;
};

int vhsm_pending_init(void);
u64 vhsm_next_req_id(void);
bool vhsm_server_present(void);
bool vhsm_server_get(struct vhsm_server_info *info);
unsigned int vhsm_pending_count(void);
int vhsm_server_register(struct sock *sk, u32 portid, u32 ctid,
			 struct netlink_ext_ack *extack);
int vhsm_server_unregister(struct sock *sk, struct netlink_ext_ack *extack);
void vhsm_server_drop_net(struct net *net);
int vhsm_forward(struct sock *client, u32 portid, u32 seq,
		 struct vhsm_ct *ct, u64 req_id, struct sk_buff *msg,
		 struct netlink_ext_ack *extack);
int vhsm_reply_check(struct sock *sk, struct netlink_ext_ack *extack);
int vhsm_reply(struct sock *sk, u64 req_id, struct sk_buff *msg,
	       struct netlink_ext_ack *extack);
void vhsm_socket_release(struct net *net, u32 portid);
void vhsm_pending_shutdown(void);
void vhsm_pending_cleanup(void);

/* netlink.c */
int vhsm_genl_register(void);
void vhsm_genl_unregister(void);
struct sk_buff *vhsm_nl_status_new(u32 status);
struct sk_buff *vhsm_nl_cancel_new(const u64 *req_ids, unsigned int n);

#endif /* _VHSM_TRANSPORT_H */
