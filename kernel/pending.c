// SPDX-License-Identifier: GPL-2.0
/*
 * VHSM transport: the registered server and the pending request table.
 *
 * One spinlock (vhsm_lock, taken with BH disabled) protects the server
 * registration and every pending entry.  Entries and messages are allocated
 * with GFP_KERNEL before it is taken; netlink_unicast() with MSG_DONTWAIT
 * never sleeps, so DELIVER and RESPONSE messages are unicast under it (as
 * nfnetlink_queue does), which keeps the client and server struct net
 * pointers valid without references.  Messages sent after an entry left the
 * table go to a namespace pinned with maybe_get_net() while it was in.
 *
 * A pending entry's net pointer is not referenced: the client's socket holds
 * its namespace, and the entry is removed when that socket is released
 * (NETLINK_URELEASE) or, at the latest, in the namespace's pre_exit.
 *
 * Counter invariants.  Every forwarded request (FORWARDED) leaves the table
 * exactly once, counted by the way it left:
 *   REPLIES      the server replied
 *   TIMEOUTS     its deadline passed                      (ETIMEDOUT)
 *   SERVER_GONE  the server unregistered, its socket or netns went away,
 *                its CTID was unbound, or the module is being unloaded
 *                                                         (ECONNRESET)
 *   CLIENT_GONE  the client's socket or netns went away first; nothing is
 *                sent
 * so that, whenever no request is in flight,
 *   FORWARDED == REPLIES + TIMEOUTS + SERVER_GONE + CLIENT_GONE + PENDING.
 * Leaving by the first three sends one RESPONSE, counted as RESPONSES if it
 * was queued to the client and UNDELIVERED if not (client queue full, its
 * socket closed but not yet released, or no memory):
 *   REPLIES + TIMEOUTS + SERVER_GONE == RESPONSES + UNDELIVERED.
 * The REQUEST-side invariant is stated in netlink.c.
 */

#include <linux/hashtable.h>
#include <linux/jiffies.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>

#include "vhsm_transport.h"

/**
 * struct vhsm_pending - a request forwarded to the server, awaiting a reply
 * @hnode: entry in vhsm_pending_hash, keyed by @req_id
 * @dl_node: entry in vhsm_deadlines (sorted by @deadline); once the entry is
 *	out of the table, entry in a private list of entries to finish
 * @net_node: entry in the client namespace's vhsm_net.pending
 * @net: client namespace; see the lifetime rules above.  Once out of the
 *	table: a reference taken with maybe_get_net(), or NULL.
 * @req_id: kernel-assigned request id
 * @deadline: jiffies after which the request fails with ETIMEDOUT
 * @portid: client socket's port id
 * @seq: nlmsg_seq of the client's REQUEST
 */
struct vhsm_pending {
	struct hlist_node hnode;
	struct list_head dl_node;
	struct list_head net_node;
	struct net *net;
	u64 req_id;
	unsigned long deadline;
	u32 portid;
	u32 seq;
};

static DEFINE_SPINLOCK(vhsm_lock);
static DEFINE_HASHTABLE(vhsm_pending_hash, 10);
static LIST_HEAD(vhsm_deadlines);
static unsigned int vhsm_npending;
static bool vhsm_closing;
static atomic64_t vhsm_last_req_id = ATOMIC64_INIT(0);

/* The registered server; @net is NULL when there is none.  @net stays valid
 * while it is set: the server's socket holds it, and URELEASE or pre_exit
 * clear it before it can go away.
 */
static struct {
	struct net *net;
	u32 portid;
	u32 tgid;
	u32 ctid;
	u64 cookie;
} vhsm_server;

static void vhsm_timeout_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(vhsm_timeout_work, vhsm_timeout_fn);

/**
 * vhsm_next_req_id - allocate a request id
 *
 * Return: a new id; ids start at 1 and are never reused during one load.
 */
u64 vhsm_next_req_id(void)
{
	return atomic64_inc_return(&vhsm_last_req_id);
}

/**
 * vhsm_server_present - whether a server is registered (racy hint)
 *
 * Return: true if a server was registered when looked at.
 */
bool vhsm_server_present(void)
{
	return READ_ONCE(vhsm_server.net);
}

/**
 * vhsm_server_get - snapshot of the registered server
 * @info: filled in if a server is registered
 *
 * Return: true if a server is registered.
 */
bool vhsm_server_get(struct vhsm_server_info *info)
{
	bool ret;

	spin_lock_bh(&vhsm_lock);
	ret = vhsm_server.net;
	if (ret) {
		info->ctid = vhsm_server.ctid;
		info->cookie = vhsm_server.cookie;
		info->tgid = vhsm_server.tgid;
		info->portid = vhsm_server.portid;
	}
	spin_unlock_bh(&vhsm_lock);
	return ret;
}

/**
 * vhsm_pending_count - number of pending requests
 *
 * Return: the number of requests awaiting a reply.
 */
unsigned int vhsm_pending_count(void)
{
	return READ_ONCE(vhsm_npending);
}

static bool vhsm_is_server_locked(const struct net *net, u32 portid)
{
	lockdep_assert_held(&vhsm_lock);

	return vhsm_server.net && net_eq(vhsm_server.net, net) &&
	       vhsm_server.portid == portid;
}

static void vhsm_timeout_arm_locked(void)
{
	struct vhsm_pending *first;
	long delay;

	lockdep_assert_held(&vhsm_lock);

	if (vhsm_closing || list_empty(&vhsm_deadlines))
		return;

	first = list_first_entry(&vhsm_deadlines, struct vhsm_pending, dl_node);
	delay = (long)(first->deadline - jiffies);
	mod_delayed_work(system_wq, &vhsm_timeout_work, max(delay, 0L));
}

static void vhsm_pending_link(struct vhsm_net *vn, struct vhsm_pending *p)
{
	struct vhsm_pending *pos;

	lockdep_assert_held(&vhsm_lock);

	hash_add(vhsm_pending_hash, &p->hnode, p->req_id);
	list_add_tail(&p->net_node, &vn->pending);
	WRITE_ONCE(vn->npending, vn->npending + 1);
	WRITE_ONCE(vhsm_npending, vhsm_npending + 1);

	/* Sorted by deadline.  timeout_ms may change at run time, but while
	 * it does not, the new entry goes last at once.
	 */
	list_for_each_entry_reverse(pos, &vhsm_deadlines, dl_node) {
		if (!time_after(pos->deadline, p->deadline)) {
			list_add(&p->dl_node, &pos->dl_node);
			return;
		}
	}
	list_add(&p->dl_node, &vhsm_deadlines);
	vhsm_timeout_arm_locked();
}

static void vhsm_pending_unlink(struct vhsm_pending *p)
{
	struct vhsm_net *vn = vhsm_pernet(p->net);

	lockdep_assert_held(&vhsm_lock);

	hash_del(&p->hnode);
	list_del(&p->dl_node);
	list_del(&p->net_node);
	WRITE_ONCE(vn->npending, vn->npending - 1);
	WRITE_ONCE(vhsm_npending, vhsm_npending - 1);
}

/* Take @p out of the table to finish it (send a RESPONSE) after unlocking. */
static void vhsm_pending_detach(struct vhsm_pending *p, struct list_head *to)
{
	vhsm_pending_unlink(p);
	p->net = maybe_get_net(p->net);
	list_add_tail(&p->dl_node, to);
}

/* Fail every entry on @list with RESPONSE{STATUS=@status}.  Process context. */
static void vhsm_pending_fail(struct list_head *list, u32 status,
			      enum vhsm_stat why)
{
	struct vhsm_pending *p, *tmp;
	int err;

	list_for_each_entry_safe(p, tmp, list, dl_node) {
		list_del(&p->dl_node);
		vhsm_stat_inc(why);
		err = -ECONNREFUSED;
		if (p->net) {
			err = vhsm_nl_send_status(p->net, p->portid, p->seq,
						  p->req_id, status);
			put_net(p->net);
		}
		vhsm_stat_inc(err ? VHSM_STAT_UNDELIVERED : VHSM_STAT_RESPONSES);
		kfree(p);
		cond_resched();
	}
}

/* Free entries whose client went away; no message is sent. */
static void vhsm_pending_drop(struct list_head *list)
{
	struct vhsm_pending *p, *tmp;

	list_for_each_entry_safe(p, tmp, list, dl_node) {
		list_del(&p->dl_node);
		vhsm_stat_inc(VHSM_STAT_CLIENT_GONE);
		kfree(p);
	}
}

/* Unregister the server; move every pending entry to @to. */
static void vhsm_server_drop_locked(struct list_head *to)
{
	struct vhsm_pending *p, *tmp;

	lockdep_assert_held(&vhsm_lock);

	WRITE_ONCE(vhsm_server.net, NULL);
	list_for_each_entry_safe(p, tmp, &vhsm_deadlines, dl_node)
		vhsm_pending_detach(p, to);
}

static void vhsm_timeout_fn(struct work_struct *work)
{
	struct vhsm_pending *p, *tmp;
	LIST_HEAD(expired);

	spin_lock_bh(&vhsm_lock);
	list_for_each_entry_safe(p, tmp, &vhsm_deadlines, dl_node) {
		if (time_before(jiffies, p->deadline))
			break;
		vhsm_pending_detach(p, &expired);
	}
	vhsm_timeout_arm_locked();
	spin_unlock_bh(&vhsm_lock);

	vhsm_pending_fail(&expired, ETIMEDOUT, VHSM_STAT_TIMEOUTS);
}

/**
 * vhsm_server_register - register the sending socket as the server
 * @net: its network namespace, bound to vhsm_veid (checked by the caller)
 * @portid: its port id
 * @ctid: the CTID of @net
 * @extack: extended ack for error messages
 *
 * Registering the registered socket again is a no-op.
 *
 * Return: 0, -EBUSY if another socket is registered, -ESHUTDOWN while the
 * module is being unloaded.
 */
int vhsm_server_register(struct net *net, u32 portid, u32 ctid,
			 struct netlink_ext_ack *extack)
{
	bool registered = false;
	int err = 0;

	spin_lock_bh(&vhsm_lock);
	if (vhsm_closing) {
		NL_SET_ERR_MSG(extack, "module unloading");
		err = -ESHUTDOWN;
	} else if (vhsm_server.net) {
		if (!vhsm_is_server_locked(net, portid)) {
			NL_SET_ERR_MSG(extack, "server already registered");
			err = -EBUSY;
		}
	} else {
		vhsm_server.portid = portid;
		vhsm_server.tgid = task_tgid_nr(current);
		vhsm_server.ctid = ctid;
		vhsm_server.cookie = vhsm_net_cookie(net);
		WRITE_ONCE(vhsm_server.net, net);
		registered = true;
	}
	spin_unlock_bh(&vhsm_lock);

	if (registered)
		pr_info_ratelimited("server registered: pid %u, portid %u, ctid %u\n",
				    task_tgid_nr(current), portid, ctid);
	return err;
}

/**
 * vhsm_server_unregister - unregister the server at its own request
 * @net: network namespace of the sending socket
 * @portid: port id of the sending socket
 * @extack: extended ack for error messages
 *
 * Pending requests fail with ECONNRESET.
 *
 * Return: 0, or -EPERM if the sender is not the registered server.
 */
int vhsm_server_unregister(struct net *net, u32 portid,
			   struct netlink_ext_ack *extack)
{
	LIST_HEAD(reset);
	int err = 0;

	spin_lock_bh(&vhsm_lock);
	if (vhsm_is_server_locked(net, portid))
		vhsm_server_drop_locked(&reset);
	else
		err = -EPERM;
	spin_unlock_bh(&vhsm_lock);

	if (err) {
		NL_SET_ERR_MSG(extack, "not the registered server");
		return err;
	}
	pr_info_ratelimited("server unregistered\n");
	vhsm_pending_fail(&reset, ECONNRESET, VHSM_STAT_SERVER_GONE);
	return 0;
}

/**
 * vhsm_server_drop_net - drop the server if it lives in a namespace
 * @net: the namespace whose CTID binding was removed
 *
 * Pending requests fail with ECONNRESET.
 */
void vhsm_server_drop_net(struct net *net)
{
	LIST_HEAD(reset);
	bool dropped = false;

	spin_lock_bh(&vhsm_lock);
	if (vhsm_server.net && net_eq(vhsm_server.net, net)) {
		vhsm_server_drop_locked(&reset);
		dropped = true;
	}
	spin_unlock_bh(&vhsm_lock);

	if (dropped) {
		pr_info_ratelimited("server dropped: its CTID was unbound\n");
		vhsm_pending_fail(&reset, ECONNRESET, VHSM_STAT_SERVER_GONE);
	}
}

/**
 * vhsm_forward - record a request and deliver it to the server
 * @net: client's network namespace
 * @portid: client's port id
 * @seq: nlmsg_seq of the client's REQUEST
 * @req_id: the id stamped in @msg
 * @msg: the DELIVER message; always consumed
 * @extack: extended ack for error messages
 *
 * Counts exactly one of FORWARDED, NO_SERVER, QUOTA or SERVER_BUSY.
 *
 * Return: 0 if the server's socket queued the message; -ECONNREFUSED (no
 * server), -ENOBUFS (per-netns quota), -EAGAIN (table or server queue full),
 * -ENOMEM.
 */
int vhsm_forward(struct net *net, u32 portid, u32 seq, u64 req_id,
		 struct sk_buff *msg, struct netlink_ext_ack *extack)
{
	struct vhsm_net *vn = vhsm_pernet(net);
	struct vhsm_pending *p;
	unsigned int timeout;
	int err;

	p = kzalloc(sizeof(*p), GFP_KERNEL);
	if (!p) {
		nlmsg_free(msg);
		vhsm_stat_inc(VHSM_STAT_SERVER_BUSY);
		NL_SET_ERR_MSG(extack, "out of memory");
		return -ENOMEM;
	}
	p->net = net;
	p->portid = portid;
	p->seq = seq;
	p->req_id = req_id;
	timeout = clamp(READ_ONCE(vhsm_timeout_ms), VHSM_TIMEOUT_MIN_MS,
			VHSM_TIMEOUT_MAX_MS);

	spin_lock_bh(&vhsm_lock);
	if (!vhsm_server.net) {
		vhsm_stat_inc(VHSM_STAT_NO_SERVER);
		NL_SET_ERR_MSG(extack, "no server registered");
		err = -ECONNREFUSED;
		goto unlock;
	}
	if (vn->npending >= READ_ONCE(vhsm_max_pending_per_ct)) {
		vhsm_stat_inc(VHSM_STAT_QUOTA);
		NL_SET_ERR_MSG(extack, "too many pending requests from this container");
		err = -ENOBUFS;
		goto unlock;
	}
	if (vhsm_npending >= READ_ONCE(vhsm_max_pending)) {
		vhsm_stat_inc(VHSM_STAT_SERVER_BUSY);
		NL_SET_ERR_MSG(extack, "server busy");
		err = -EAGAIN;
		goto unlock;
	}

	/* In the table before the server can see the request: a REPLY
	 * waits for vhsm_lock and then finds it.
	 */
	p->deadline = jiffies + msecs_to_jiffies(timeout);
	vhsm_pending_link(vn, p);

	err = genlmsg_unicast(vhsm_server.net, msg, vhsm_server.portid);
	msg = NULL;
	if (err) {
		vhsm_pending_unlink(p);
		if (err == -ECONNREFUSED) {
			/* Socket closed; URELEASE will drop the registration. */
			vhsm_stat_inc(VHSM_STAT_NO_SERVER);
			NL_SET_ERR_MSG(extack, "no server registered");
		} else {
			vhsm_stat_inc(VHSM_STAT_SERVER_BUSY);
			NL_SET_ERR_MSG(extack, "server queue full");
			err = -EAGAIN;
		}
		goto unlock;
	}
	vhsm_stat_inc(VHSM_STAT_FORWARDED);
	p = NULL;
unlock:
	spin_unlock_bh(&vhsm_lock);
	nlmsg_free(msg);
	kfree(p);
	return err;
}

/**
 * vhsm_reply_check - whether the sender of a REPLY is the server
 * @net: network namespace of the sending socket
 * @portid: port id of the sending socket
 * @extack: extended ack for error messages
 *
 * Counts BAD_REPLY on refusal.
 *
 * Return: 0, or -EPERM.
 */
int vhsm_reply_check(struct net *net, u32 portid,
		     struct netlink_ext_ack *extack)
{
	bool ok;

	spin_lock_bh(&vhsm_lock);
	ok = vhsm_is_server_locked(net, portid);
	spin_unlock_bh(&vhsm_lock);

	if (ok)
		return 0;
	vhsm_stat_inc(VHSM_STAT_BAD_REPLY);
	NL_SET_ERR_MSG(extack, "not the registered server");
	return -EPERM;
}

/**
 * vhsm_reply - complete a pending request with the server's reply
 * @net: network namespace of the sending socket
 * @portid: port id of the sending socket
 * @req_id: the request id the server answers
 * @msg: the RESPONSE for the client, its nlmsg_pid and nlmsg_seq still to be
 *	filled in; always consumed
 * @extack: extended ack for error messages
 *
 * A client that went away is not the server's fault: the reply is then
 * counted as REPLIES and UNDELIVERED, and 0 is returned.
 *
 * Return: 0, -EPERM if the sender is not the server, -ENOENT for an unknown
 * or expired id (both counted as BAD_REPLY).
 */
int vhsm_reply(struct net *net, u32 portid, u64 req_id, struct sk_buff *msg,
	       struct netlink_ext_ack *extack)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct vhsm_pending *p = NULL, *pos;
	int err;

	spin_lock_bh(&vhsm_lock);
	if (!vhsm_is_server_locked(net, portid)) {
		vhsm_stat_inc(VHSM_STAT_BAD_REPLY);
		NL_SET_ERR_MSG(extack, "not the registered server");
		err = -EPERM;
		goto unlock;
	}
	hash_for_each_possible(vhsm_pending_hash, pos, hnode, req_id) {
		if (pos->req_id == req_id) {
			p = pos;
			break;
		}
	}
	if (!p) {
		vhsm_stat_inc(VHSM_STAT_BAD_REPLY);
		NL_SET_ERR_MSG(extack, "unknown or expired request id");
		err = -ENOENT;
		goto unlock;
	}

	vhsm_pending_unlink(p);
	vhsm_stat_inc(VHSM_STAT_REPLIES);
	nlh->nlmsg_pid = p->portid;
	nlh->nlmsg_seq = p->seq;
	err = genlmsg_unicast(p->net, msg, p->portid);
	msg = NULL;
	vhsm_stat_inc(err ? VHSM_STAT_UNDELIVERED : VHSM_STAT_RESPONSES);
	err = 0;
unlock:
	spin_unlock_bh(&vhsm_lock);
	nlmsg_free(msg);
	kfree(p);
	return err;
}

/**
 * vhsm_socket_release - a generic netlink socket was closed
 * @net: its network namespace
 * @portid: its port id
 *
 * Drops the pending requests it sent (so that a socket reusing the port id
 * never gets their replies) and, if it was the server, the registration.
 * Process context (NETLINK_URELEASE).
 */
void vhsm_socket_release(struct net *net, u32 portid)
{
	struct vhsm_net *vn = vhsm_pernet(net);
	struct vhsm_pending *p, *tmp;
	bool dropped = false;
	LIST_HEAD(reset);
	LIST_HEAD(gone);

	/* Cheap exit for the common case.  Neither value can change for this
	 * socket any more: it is closed, so it neither sends nor registers.
	 */
	if (!READ_ONCE(vn->npending) && READ_ONCE(vhsm_server.net) != net)
		return;

	spin_lock_bh(&vhsm_lock);
	list_for_each_entry_safe(p, tmp, &vn->pending, net_node) {
		if (p->portid == portid) {
			vhsm_pending_unlink(p);
			list_add_tail(&p->dl_node, &gone);
		}
	}
	if (vhsm_is_server_locked(net, portid)) {
		vhsm_server_drop_locked(&reset);
		dropped = true;
	}
	spin_unlock_bh(&vhsm_lock);

	vhsm_pending_drop(&gone);
	if (dropped) {
		pr_info_ratelimited("server socket closed\n");
		vhsm_pending_fail(&reset, ECONNRESET, VHSM_STAT_SERVER_GONE);
	}
}

/**
 * vhsm_pending_net_exit - a network namespace is being dismantled
 * @net: the namespace; it has no user sockets left
 *
 * Drops the requests its clients sent and, if the server lived there, the
 * registration.  Called from the pernet pre_exit (process context).
 */
void vhsm_pending_net_exit(struct net *net)
{
	struct vhsm_net *vn = vhsm_pernet(net);
	struct vhsm_pending *p, *tmp;
	bool dropped = false;
	LIST_HEAD(reset);
	LIST_HEAD(gone);

	spin_lock_bh(&vhsm_lock);
	list_for_each_entry_safe(p, tmp, &vn->pending, net_node) {
		vhsm_pending_unlink(p);
		list_add_tail(&p->dl_node, &gone);
	}
	if (vhsm_server.net && net_eq(vhsm_server.net, net)) {
		vhsm_server_drop_locked(&reset);
		dropped = true;
	}
	spin_unlock_bh(&vhsm_lock);

	vhsm_pending_drop(&gone);
	if (dropped) {
		pr_info_ratelimited("server netns exited\n");
		vhsm_pending_fail(&reset, ECONNRESET, VHSM_STAT_SERVER_GONE);
	}
}

/**
 * vhsm_pending_shutdown - first step of module unload
 *
 * Refuses new registrations and requests from now on, drops the server and
 * fails every pending request with ECONNRESET.
 */
void vhsm_pending_shutdown(void)
{
	LIST_HEAD(reset);

	spin_lock_bh(&vhsm_lock);
	vhsm_closing = true;
	vhsm_server_drop_locked(&reset);
	spin_unlock_bh(&vhsm_lock);

	cancel_delayed_work_sync(&vhsm_timeout_work);
	vhsm_pending_fail(&reset, ECONNRESET, VHSM_STAT_SERVER_GONE);
}

/**
 * vhsm_pending_cleanup - last step of module unload, after the family is gone
 */
void vhsm_pending_cleanup(void)
{
	cancel_delayed_work_sync(&vhsm_timeout_work);
	WARN_ON_ONCE(vhsm_npending);
}
