/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VHSM transport: definitions shared by the files of vhsm_transport.ko.
 *
 * main.c     module parameters, counters, per-netns CTID bindings,
 *            NETLINK_URELEASE notifier, module init/exit
 * pending.c  server registration, pending request table, deadlines
 * netlink.c  the generic netlink family: policies, ops, messages
 *
 * Locking (outermost first):
 *   vhsm_bind_lock (mutex)   CTID bindings, the vhsm_bindings list
 *   vhsm_lock (spinlock, BH) server registration and every pending entry
 */
#ifndef _VHSM_TRANSPORT_H
#define _VHSM_TRANSPORT_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#include "uapi/vhsm.h"

/* Bounds of the timeout_ms module parameter. */
#define VHSM_TIMEOUT_MIN_MS	10U
#define VHSM_TIMEOUT_MAX_MS	600000U

/**
 * struct vhsm_net - per network namespace state (net_generic)
 * @net: the namespace this belongs to
 * @ctid: CTID bound by the host admin, 0 if none; written under
 *	vhsm_bind_lock, read locklessly with READ_ONCE()
 * @bind_node: entry on vhsm_bindings (sorted by CTID) while @ctid != 0
 * @pending: pending requests sent by clients of this namespace (vhsm_lock)
 * @npending: number of entries on @pending (vhsm_lock)
 */
struct vhsm_net {
	struct net *net;
	u32 ctid;
	struct list_head bind_node;
	struct list_head pending;
	unsigned int npending;
};

/* main.c */
extern unsigned int vhsm_veid;
extern bool vhsm_allow_unbound;
extern unsigned int vhsm_timeout_ms;
extern unsigned int vhsm_max_pending_per_ct;
extern unsigned int vhsm_max_pending;
extern struct mutex vhsm_bind_lock;
extern struct list_head vhsm_bindings;

struct vhsm_net *vhsm_pernet(const struct net *net);
u32 vhsm_net_ctid(const struct net *net);
void vhsm_stat_inc(enum vhsm_stat stat);
u64 vhsm_stat_read(enum vhsm_stat stat);
int vhsm_ct_bind(struct net *net, u32 ctid, struct netlink_ext_ack *extack);
int vhsm_ct_unbind(u32 ctid, struct netlink_ext_ack *extack);

static inline u64 vhsm_net_cookie(const struct net *net)
{
	return net->net_cookie;
}

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

u64 vhsm_next_req_id(void);
bool vhsm_server_present(void);
bool vhsm_server_get(struct vhsm_server_info *info);
unsigned int vhsm_pending_count(void);
int vhsm_server_register(struct net *net, u32 portid, u32 ctid,
			 struct netlink_ext_ack *extack);
int vhsm_server_unregister(struct net *net, u32 portid,
			   struct netlink_ext_ack *extack);
void vhsm_server_drop_net(struct net *net);
int vhsm_forward(struct net *net, u32 portid, u32 seq, u64 req_id,
		 struct sk_buff *msg, struct netlink_ext_ack *extack);
int vhsm_reply_check(struct net *net, u32 portid,
		     struct netlink_ext_ack *extack);
int vhsm_reply(struct net *net, u32 portid, u64 req_id, struct sk_buff *msg,
	       struct netlink_ext_ack *extack);
void vhsm_socket_release(struct net *net, u32 portid);
void vhsm_pending_net_exit(struct net *net);
void vhsm_pending_shutdown(void);
void vhsm_pending_cleanup(void);

/* netlink.c */
int vhsm_genl_register(void);
void vhsm_genl_unregister(void);
int vhsm_nl_send_status(struct net *net, u32 portid, u32 seq, u64 req_id,
			u32 status);

#endif /* _VHSM_TRANSPORT_H */
