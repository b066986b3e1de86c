// SPDX-License-Identifier: GPL-2.0
/*
 * VHSM transport: containers.  The host admin binds a network namespace to
 * a CTID and, with it, the pid namespace the container's PIDs are counted
 * in; the user namespace that owns the netns is the one its uids are
 * counted in.  Every request is stamped in those namespaces, never in the
 * sender's own: any process may unshare a user and pid namespace and be
 * "root" and "PID 1" there.
 */

#include <linux/cred.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uidgid.h>

#include "vhsm_transport.h"

/* Bound namespaces sorted by CTID, so CT_GET can resume after the last CTID
 * it sent.  Holds only namespaces whose pre_exit has not run yet.
 */
DEFINE_MUTEX(vhsm_bind_lock);
LIST_HEAD(vhsm_bindings);

/* Every unbound namespace shares this one container (allow_unbound), so
 * creating namespaces, which needs no privilege, cannot multiply the quota.
 * Its stamps are the host's view.  Never freed: its first reference is
 * never dropped.
 */
static struct vhsm_ct vhsm_unbound_ct = {
	.ref = REFCOUNT_INIT(1),
	.ctid = 0,
	.pidns = &init_pid_ns,
	.userns = &init_user_ns,
};

static void vhsm_ct_free_rcu(struct rcu_head *head)
{
	kfree(container_of(head, struct vhsm_ct, rcu));
}

/**
 * vhsm_ct_put - drop a reference to a container
 * @ct: the container
 *
 * Process context: the last reference drops the namespaces.
 */
void vhsm_ct_put(struct vhsm_ct *ct)
{
	if (!refcount_dec_and_test(&ct->ref))
		return;
	WARN_ON_ONCE(ct->npending || ct->queued);
	put_pid_ns(ct->pidns);
	put_user_ns(ct->userns);
	/* vhsm_sender_get() may still be looking at it. */
	call_rcu(&ct->rcu, vhsm_ct_free_rcu);
}

/**
 * vhsm_ct_bound - the container bound to a namespace
 * @vn: the namespace's data; the caller holds vhsm_bind_lock
 *
 * Return: the container, NULL if the namespace is not bound.
 */
struct vhsm_ct *vhsm_ct_bound(struct vhsm_net *vn)
{
	return rcu_dereference_protected(vn->ct,
					 lockdep_is_held(&vhsm_bind_lock));
}

/**
 * vhsm_net_ctid - the CTID bound to a network namespace
 * @vn: the namespace's data; the caller holds vhsm_bind_lock
 *
 * Return: the CTID, 0 if the namespace is not bound.
 */
u32 vhsm_net_ctid(struct vhsm_net *vn)
{
	struct vhsm_ct *ct = vhsm_ct_bound(vn);

	return ct ? ct->ctid : 0;
}

static void vhsm_unbind_locked(struct vhsm_net *vn)
{
	struct vhsm_ct *ct = vhsm_ct_bound(vn);

	list_del_init(&vn->bind_node);
	RCU_INIT_POINTER(vn->ct, NULL);
	vhsm_ct_put(ct);
}

/**
 * vhsm_ct_bind - bind a network namespace to a CTID
 * @net: the namespace, referenced by the caller
 * @pidns: the pid namespace its stamps are counted in, referenced by the
 *	caller (this takes its own reference)
 * @ctid: the CTID, not 0
 * @extack: extended ack for error messages
 *
 * Binding the same triple again is a no-op.
 *
 * Return: 0, -EEXIST if @net is bound otherwise or @ctid belongs to another
 * live namespace, -ENOMEM.
 */
int vhsm_ct_bind(struct net *net, struct pid_namespace *pidns, u32 ctid,
		 struct netlink_ext_ack *extack)
{
	struct vhsm_net *vn = vhsm_pernet(net);
	struct list_head *before = &vhsm_bindings;
	struct vhsm_net *pos, *tmp;
	struct vhsm_ct *ct;
	int err = 0;

	ct = kzalloc(sizeof(*ct), GFP_KERNEL_ACCOUNT);
	if (!ct)
		return -ENOMEM;

	mutex_lock(&vhsm_bind_lock);
	if (vhsm_ct_bound(vn)) {
		struct vhsm_ct *old = vhsm_ct_bound(vn);

		if (old->ctid != ctid) {
			NL_SET_ERR_MSG(extack, "netns already bound to another CTID");
			err = -EEXIST;
		} else if (old->pidns != pidns) {
			NL_SET_ERR_MSG(extack, "netns bound to this CTID with another pidns");
			err = -EEXIST;
		}
		goto out;
	}

	list_for_each_entry_safe(pos, tmp, &vhsm_bindings, bind_node) {
		u32 pos_ctid = vhsm_net_ctid(pos);

		if (pos_ctid == ctid) {
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
		if (pos_ctid > ctid && before == &vhsm_bindings)
			before = &pos->bind_node;
	}

	refcount_set(&ct->ref, 1);
	ct->ctid = ctid;
	ct->pidns = get_pid_ns(pidns);
	ct->userns = get_user_ns(net->user_ns);
	rcu_assign_pointer(vn->ct, ct);
	list_add_tail(&vn->bind_node, before);
	ct = NULL;
out:
	mutex_unlock(&vhsm_bind_lock);
	kfree(ct);
	return err;
}

/**
 * vhsm_ct_unbind - forget the binding of a CTID
 * @ctid: the CTID
 * @extack: extended ack for error messages
 *
 * If the namespace hosts the registered server, the registration is dropped
 * and its pending requests fail with ECONNRESET.  Requests already charged
 * to the container stay charged to it until they finish.
 *
 * Return: 0, or -ENOENT if @ctid is not bound.
 */
int vhsm_ct_unbind(u32 ctid, struct netlink_ext_ack *extack)
{
	struct vhsm_net *vn;
	int err = -ENOENT;

	mutex_lock(&vhsm_bind_lock);
	list_for_each_entry(vn, &vhsm_bindings, bind_node) {
		if (vhsm_net_ctid(vn) == ctid) {
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

/**
 * vhsm_ct_net_exit - a namespace is being dismantled: drop its binding
 * @vn: its data
 */
void vhsm_ct_net_exit(struct vhsm_net *vn)
{
	mutex_lock(&vhsm_bind_lock);
	if (vhsm_ct_bound(vn))
		vhsm_unbind_locked(vn);
	mutex_unlock(&vhsm_bind_lock);
}

static struct vhsm_ct *vhsm_ct_of(struct vhsm_net *vn)
{
	struct vhsm_ct *ct;

	rcu_read_lock();
	ct = rcu_dereference(vn->ct);
	/* Zero: unbound meanwhile, and its last user is dropping it. */
	if (ct && !refcount_inc_not_zero(&ct->ref))
		ct = NULL;
	rcu_read_unlock();

	if (!ct && READ_ONCE(vhsm_allow_unbound)) {
		ct = &vhsm_unbound_ct;
		refcount_inc(&ct->ref);
	}
	return ct;
}

/**
 * vhsm_sender_get - the identity of the task sending a request
 * @net: the network namespace of its socket
 * @sender: filled in; sender->ct must be dropped with vhsm_ct_put()
 * @extack: extended ack for error messages
 *
 * Must run in the sending task (a doit runs inside its sendmsg()).  Never
 * NETLINK_CB(skb).portid (an address, not a pid), nor NETLINK_CREDS (the
 * sender chooses them with SCM_CREDENTIALS).
 *
 * Return: 0, or -EACCES if the namespace is not bound (and unbound ones are
 * not allowed) or the container's pid namespace cannot see the sender;
 * counted as UNBOUND or FOREIGN_PID.
 */
int vhsm_sender_get(struct net *net, struct vhsm_sender *sender,
		    struct netlink_ext_ack *extack)
{
	struct vhsm_ct *ct = vhsm_ct_of(vhsm_pernet(net));
	pid_t pid;

	if (!ct) {
		vhsm_stat_inc(VHSM_STAT_UNBOUND);
		NL_SET_ERR_MSG(extack, "container not bound to a CTID");
		return -EACCES;
	}

	/* 0 unless current lives in that pid namespace or below it. */
	pid = task_tgid_nr_ns(current, ct->pidns);
	if (pid <= 0) {
		vhsm_ct_put(ct);
		vhsm_stat_inc(VHSM_STAT_FOREIGN_PID);
		NL_SET_ERR_MSG(extack, "sender not in the container's pid namespace");
		return -EACCES;
	}

	sender->ct = ct;
	sender->pid = pid;
	sender->uid = from_kuid_munged(ct->userns, current_euid());
	sender->gid = from_kgid_munged(ct->userns, current_egid());
	sender->proc_start = current->group_leader->start_boottime;
	return 0;
}
