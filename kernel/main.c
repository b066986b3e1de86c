// SPDX-License-Identifier: GPL-2.0
/*
 * VHSM transport: routes requests from containers (network namespaces) to
 * the one VHSM server over generic netlink, stamping the sender's identity.
 *
 * This file: module parameters, counters, per-netns data, the
 * NETLINK_URELEASE notifier and module init/exit.
 */

#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#include "vhsm_transport.h"

unsigned int vhsm_veid;
module_param_named(vhsm_veid, vhsm_veid, uint, 0444);
MODULE_PARM_DESC(vhsm_veid, "CTID of the VHSM container (0: no server may register)");

bool vhsm_allow_unbound;
module_param_named(allow_unbound, vhsm_allow_unbound, bool, 0644);
MODULE_PARM_DESC(allow_unbound, "Forward requests from netns without a CTID, stamped CTID 0 (default: refuse)");

unsigned int vhsm_timeout_ms = 10000;

static int vhsm_timeout_set(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int err;

	err = kstrtouint(val, 0, &v);
	if (err)
		return err;
	WRITE_ONCE(*(unsigned int *)kp->arg,
		   clamp(v, VHSM_TIMEOUT_MIN_MS, VHSM_TIMEOUT_MAX_MS));
	return 0;
}

static const struct kernel_param_ops vhsm_timeout_ops = {
	.set = vhsm_timeout_set,
	.get = param_get_uint,
};

module_param_cb(timeout_ms, &vhsm_timeout_ops, &vhsm_timeout_ms, 0644);
MODULE_PARM_DESC(timeout_ms, "Deadline of a forwarded request in ms, clamped to [10, 600000] (default 10000)");

unsigned int vhsm_max_pending_per_ct = 256;
module_param_named(max_pending_per_ct, vhsm_max_pending_per_ct, uint, 0644);
MODULE_PARM_DESC(max_pending_per_ct, "Pending requests allowed per container (default 256)");

unsigned int vhsm_max_pending = 4096;
module_param_named(max_pending, vhsm_max_pending, uint, 0644);
MODULE_PARM_DESC(max_pending, "Pending requests allowed in total (default 4096)");

unsigned int vhsm_ct_queue_share = 25;

static int vhsm_percent_set(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int err;

	err = kstrtouint(val, 0, &v);
	if (err)
		return err;
	if (v < 1 || v > 100)
		return -ERANGE;
	WRITE_ONCE(*(unsigned int *)kp->arg, v);
	return 0;
}

static const struct kernel_param_ops vhsm_percent_ops = {
	.set = vhsm_percent_set,
	.get = param_get_uint,
};

module_param_cb(ct_queue_share, &vhsm_percent_ops, &vhsm_ct_queue_share, 0644);
MODULE_PARM_DESC(ct_queue_share, "Percent of the server socket's receive buffer one container's pending requests may hold, 1-100 (default 25)");

/* Counters since load, indexed by enum vhsm_stat; see pending.c for the
 * invariants that relate them.
 */
static atomic64_t vhsm_stats[__VHSM_STAT_MAX];

/**
 * vhsm_stat_inc - count one event
 * @stat: the counter
 */
void vhsm_stat_inc(enum vhsm_stat stat)
{
	atomic64_inc(&vhsm_stats[stat]);
}

/**
 * vhsm_stat_read - read a counter
 * @stat: the counter
 *
 * Return: its value.
 */
u64 vhsm_stat_read(enum vhsm_stat stat)
{
	return atomic64_read(&vhsm_stats[stat]);
}

static unsigned int vhsm_net_id __read_mostly;

/**
 * vhsm_pernet - the module's data of a network namespace
 * @net: the namespace
 *
 * Return: its struct vhsm_net.
 */
struct vhsm_net *vhsm_pernet(const struct net *net)
{
	return net_generic(net, vhsm_net_id);
}

static int __net_init vhsm_net_init(struct net *net)
{
	struct vhsm_net *vn = vhsm_pernet(net);

	vn->net = net;
	INIT_LIST_HEAD(&vn->bind_node);
	INIT_LIST_HEAD(&vn->pending);
	return 0;
}

/* The namespace has no user sockets left.  Runs before any .exit, so also
 * before genetlink releases net->genl_sock.
 */
static void __net_exit vhsm_net_pre_exit(struct net *net)
{
	/* Nothing pending refers to it: pending entries and the server
	 * registration hold their sockets, and a socket holds its netns.
	 */
	vhsm_ct_net_exit(vhsm_pernet(net));
}

static void __net_exit vhsm_net_exit(struct net *net)
{
	struct vhsm_net *vn = vhsm_pernet(net);

	WARN_ON_ONCE(!list_empty(&vn->pending));
	WARN_ON_ONCE(!list_empty(&vn->bind_node));
	WARN_ON_ONCE(rcu_access_pointer(vn->ct));
}

static struct pernet_operations vhsm_net_ops = {
	.init = vhsm_net_init,
	.pre_exit = vhsm_net_pre_exit,
	.exit = vhsm_net_exit,
	.id = &vhsm_net_id,
	.size = sizeof(struct vhsm_net),
};

/* Called from netlink_release() through a blocking notifier chain (process
 * context, checked in 6.1 and 6.12 af_netlink.c) for every bound netlink
 * socket that is closed, after it was unhashed.
 */
static int vhsm_netlink_notify(struct notifier_block *nb, unsigned long event,
			       void *ptr)
{
	const struct netlink_notify *n = ptr;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC ||
	    !n->portid)
		return NOTIFY_DONE;

	vhsm_socket_release(n->net, n->portid);
	return NOTIFY_DONE;
}

static struct notifier_block vhsm_netlink_notifier = {
	.notifier_call = vhsm_netlink_notify,
};

static int __init vhsm_init(void)
{
	int err;

	err = vhsm_pending_init();
	if (err)
		return err;

	/* ORDER: per-netns data and the release notifier must exist before
	 * the family makes the ops reachable.
	 */
	err = register_pernet_subsys(&vhsm_net_ops);
	if (err)
		return err;

	err = netlink_register_notifier(&vhsm_netlink_notifier);
	if (err)
		goto err_pernet;

	err = vhsm_genl_register();
	if (err)
		goto err_notifier;

	pr_info_ratelimited("loaded, vhsm_veid=%u\n", vhsm_veid);
	return 0;

err_notifier:
	netlink_unregister_notifier(&vhsm_netlink_notifier);
err_pernet:
	unregister_pernet_subsys(&vhsm_net_ops);
	return err;
}

static void __exit vhsm_exit(void)
{
	/* Drop the server and fail every pending request with ECONNRESET
	 * while the family id in those RESPONSEs is still valid; from here on
	 * no request is forwarded and no server can register.
	 */
	vhsm_pending_shutdown();

	/* Waits for running doits; none can start afterwards. */
	vhsm_genl_unregister();
	netlink_unregister_notifier(&vhsm_netlink_notifier);
	vhsm_pending_cleanup();
	unregister_pernet_subsys(&vhsm_net_ops);
	/* Containers are freed after a grace period (vhsm_ct_put). */
	rcu_barrier();
}

module_init(vhsm_init);
module_exit(vhsm_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("VHSM transport: container to VHSM server request routing");
MODULE_AUTHOR("VHSM project");
MODULE_ALIAS_GENL_FAMILY(VHSM_GENL_NAME);
