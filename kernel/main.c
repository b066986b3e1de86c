// SPDX-License-Identifier: GPL-2.0
/*
 * VHSM transport: routes requests from containers (network namespaces) to
 * the one VHSM server over generic netlink, stamping the sender's identity.
 *
 * This file: module parameters, counters, the per-netns CTID bindings, the
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
MODULE_PARM_DESC(max_pending_per_ct, "Pending requests allowed per netns (default 256)");

unsigned int vhsm_max_pending = 4096;
module_param_named(max_pending, vhsm_max_pending, uint, 0644);
MODULE_PARM_DESC(max_pending, "Pending requests allowed in total (default 4096)");

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

/* Bound namespaces sorted by CTID, so CT_GET can resume after the last CTID
 * it sent.  Holds only namespaces whose pre_exit has not run yet.
 */
DEFINE_MUTEX(vhsm_bind_lock);
LIST_HEAD(vhsm_bindings);

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

/**
 * vhsm_net_ctid - the CTID bound to a network namespace
 * @net: the namespace
 *
 * Return: the CTID, 0 if the namespace is not bound.
 */
u32 vhsm_net_ctid(const struct net *net)
{
	return READ_ONCE(vhsm_pernet(net)->ctid);
}

static void vhsm_unbind_locked(struct vhsm_net *vn)
{
	lockdep_assert_held(&vhsm_bind_lock);

	list_del_init(&vn->bind_node);
	WRITE_ONCE(vn->ctid, 0);
}

/**
 * vhsm_ct_bind - bind a network namespace to a CTID
 * @net: the namespace, referenced by the caller
 * @ctid: the CTID, not 0
 * @extack: extended ack for error messages
 *
 * Binding the same pair again is a no-op.
 *
 * Return: 0, or -EEXIST if @net has another CTID or @ctid belongs to another
 * live namespace.
 */
int vhsm_ct_bind(struct net *net, u32 ctid, struct netlink_ext_ack *extack)
{
	struct vhsm_net *vn = vhsm_pernet(net);
	struct list_head *before = &vhsm_bindings;
	struct vhsm_net *pos, *tmp;
	int err = 0;

	mutex_lock(&vhsm_bind_lock);
	if (vn->ctid) {
		if (vn->ctid != ctid) {
			NL_SET_ERR_MSG(extack, "netns already bound to another CTID");
			err = -EEXIST;
		}
		goto out;
	}

	list_for_each_entry_safe(pos, tmp, &vhsm_bindings, bind_node) {
		if (pos->ctid == ctid) {
			if (check_net(pos->net)) {
				NL_SET_ERR_MSG(extack, "CTID already bound to another netns");
				err = -EEXIST;
				goto out;
			}
			/* Namespace being dismantled, pre_exit not run yet:
			 * it has no sockets left, so its CTID is free.
			 */
			vhsm_unbind_locked(pos);
			continue;
		}
		if (pos->ctid > ctid && before == &vhsm_bindings)
			before = &pos->bind_node;
	}

	WRITE_ONCE(vn->ctid, ctid);
	list_add_tail(&vn->bind_node, before);
out:
	mutex_unlock(&vhsm_bind_lock);
	return err;
}

/**
 * vhsm_ct_unbind - forget the binding of a CTID
 * @ctid: the CTID
 * @extack: extended ack for error messages
 *
 * If the namespace hosts the registered server, the registration is dropped
 * and its pending requests fail with ECONNRESET.
 *
 * Return: 0, or -ENOENT if @ctid is not bound.
 */
int vhsm_ct_unbind(u32 ctid, struct netlink_ext_ack *extack)
{
	struct vhsm_net *vn;
	int err = -ENOENT;

	mutex_lock(&vhsm_bind_lock);
	list_for_each_entry(vn, &vhsm_bindings, bind_node) {
		if (vn->ctid == ctid) {
			vhsm_unbind_locked(vn);
			vhsm_server_drop_net(vn->net);
			err = 0;
			break;
		}
	}
	mutex_unlock(&vhsm_bind_lock);

	if (err)
		NL_SET_ERR_MSG(extack, "CTID not bound");
	return err;
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
	struct vhsm_net *vn = vhsm_pernet(net);

	mutex_lock(&vhsm_bind_lock);
	if (vn->ctid)
		vhsm_unbind_locked(vn);
	mutex_unlock(&vhsm_bind_lock);

	vhsm_pending_net_exit(net);
}

static void __net_exit vhsm_net_exit(struct net *net)
{
	struct vhsm_net *vn = vhsm_pernet(net);

	WARN_ON_ONCE(!list_empty(&vn->pending));
	WARN_ON_ONCE(!list_empty(&vn->bind_node));
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
}

module_init(vhsm_init);
module_exit(vhsm_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("VHSM transport: container to VHSM server request routing");
MODULE_AUTHOR("VHSM project");
MODULE_ALIAS_GENL_FAMILY(VHSM_GENL_NAME);
