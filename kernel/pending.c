// SPDX-License-Identifier: GPL-2.0
/*
 * VHSM transport: the registered server and the pending request table.
 *
 * Sockets, not port ids.  The server's socket and the socket of every
 * client with a pending request are held (sock_hold), and messages are
 * queued on exactly those sockets (sock_queue_rcv_skb()): a port id is free
 * again as soon as netlink_release() unhashes its socket, before
 * NETLINK_URELEASE runs, so a lookup by port id in that gap could reach
 * another socket that bound the same id.  A held client socket also holds
 * its network namespace.
 *
 * One spinlock (vhsm_lock, taken with BH disabled) protects the
 * registration, every pending entry and the charges of every container.
 * DELIVERs are queued to the server under it, so that a REPLY, which waits
 * for the lock, always finds its entry; RESPONSEs and CANCELs are queued
 * after it is dropped, to sockets held by a reference.  Entries and
 * messages are allocated with GFP_KERNEL before it is taken; DELIVERs and
 * entries are charged to the sender's memory cgroup.
 *
 * Charges.  A forwarded request is charged to its container (struct
 * vhsm_ct) until it leaves the table: one of max_pending_per_ct, and the
 * truesize of its DELIVER plus room for a CANCEL that names it, out of
 * ct_queue_share percent of the server socket's receive buffer (a container
 * with nothing charged may always send one request).  Closing the client
 * socket does not end the charge, as the server still holds the work: the
 * entry is orphaned, and the server gets a CANCEL naming it.
 *
 * Counter invariants.  Every forwarded request (FORWARDED) leaves the table
 * exactly once, counted by the way it left:
 *   REPLIES      the server replied
 *   TIMEOUTS     its deadline passed                      (ETIMEDOUT)
 *   SERVER_GONE  the server unregistered, its socket went away, its CTID
 *                was unbound, or the module is being unloaded (ECONNRESET)
 * and then sends its client one RESPONSE, counted as RESPONSES if it was
 * queued and UNDELIVERED if not (the client's queue was full, its socket
 * was closing, no memory), or, if it had been orphaned, nothing
 * (CLIENT_GONE).  So, whenever no request is in flight:
 *   FORWARDED == REPLIES + TIMEOUTS + SERVER_GONE + PENDING
 *   REPLIES + TIMEOUTS + SERVER_GONE == RESPONSES + UNDELIVERED + CLIENT_GONE
 *   ORPHANED == CLIENT_GONE + orphaned entries still pending
 * The REQUEST-side invariant is stated in netlink.c.
 */

#include <linux/hashtable.h>
#include <linux/jiffies.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>
#include <net/sock.h>

#include "vhsm_transport.h"

/* Request ids per CANCEL message: 256 ids are about 3 KiB. */
#define VHSM_CANCEL_MAX_IDS	256

/**
 * struct vhsm_pending - a request forwarded to the server, awaiting a reply
 * @hnode: entry in vhsm_pending_hash, keyed by @req_id
 * @dl_node: entry in vhsm_deadlines (sorted by @deadline); once the entry is
 *	out of the table, entry in a private list of entries to finish
 * @client_node: entry in the client namespace's vhsm_net.pending while
 *	@sk is set
 * @ct: the container it is charged to (referenced)
 * @sk: the client's socket (referenced), NULL once that socket is released
 * @req_id: kernel-assigned request id
 * @deadline: jiffies after which the request fails with ETIMEDOUT
 * @portid: client socket's port id
 * @seq: nlmsg_seq of the client's REQUEST
 * @charge: bytes charged to @ct->queued
 */
struct vhsm_pending {
	struct hlist_node hnode;
	struct list_head dl_node;
	struct list_head client_node;
	struct vhsm_ct *ct;
	struct sock *sk;
	u64 req_id;
	unsigned long deadline;
	u32 portid;
	u32 seq;
	u32 charge;
};

static DEFINE_SPINLOCK(vhsm_lock);
static DEFINE_HASHTABLE(vhsm_pending_hash, 10);
static LIST_HEAD(vhsm_deadlines);
static unsigned int vhsm_npending;
static bool vhsm_closing;
static atomic64_t vhsm_last_req_id = ATOMIC64_INIT(0);

/* Truesize of a CANCEL naming one request: charged with every request, so
 * that the CANCELs a container causes fit in its share too.
 */
static unsigned int vhsm_cancel_reserve __ro_after_init;

/* The registered server; @sk is NULL when there is none, else held.  @net
 * is its namespace, kept for the lockless check in vhsm_socket_release();
 * it is compared, never dereferenced.
 */
static struct {
	struct sock *sk;
	const struct net *net;
	u32 portid;
	u32 tgid;
	u32 ctid;
	u64 cookie;
} vhsm_server;

static void vhsm_timeout_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(vhsm_timeout_work, vhsm_timeout_fn);

/**
 * vhsm_pending_init - measure what a CANCEL costs
 *
 * Return: 0 or -ENOMEM.
 */
int __init vhsm_pending_init(void)
{
	struct sk_buff *msg;
	u64 id = 0;

	msg = vhsm_nl_cancel_new(&id, 1);
	if (!msg)
		return -ENOMEM;
	vhsm_cancel_reserve = msg->truesize;
	nlmsg_free(msg);
	return 0;
}

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
	return READ_ONCE(vhsm_server.sk);
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
	ret = vhsm_server.sk;
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

static bool vhsm_is_server_locked(const struct sock *sk)
{
	lockdep_assert_held(&vhsm_lock);

	return vhsm_server.sk && vhsm_server.sk == sk;
}

/* Queues @skb on exactly @sk; always consumes @skb. */
static int vhsm_queue_to(struct sock *sk, struct sk_buff *skb)
{
	int err = -ECONNREFUSED;

	if (!sock_flag(sk, SOCK_DEAD))
		err = sock_queue_rcv_skb(sk, skb);
	if (err)
		kfree_skb(skb);
	return err;
}

/* A container's share of the server's receive queue, in bytes. */
static unsigned int vhsm_ct_budget(const struct sock *server)
{
	u64 rcvbuf = max(READ_ONCE(server->sk_rcvbuf), 0);

	return rcvbuf * READ_ONCE(vhsm_ct_queue_share) / 100;
}

static void vhsm_charge(struct vhsm_ct *ct, u32 bytes)
{
	WRITE_ONCE(ct->npending, ct->npending + 1);
	WRITE_ONCE(ct->queued, ct->queued + bytes);
}

static void vhsm_uncharge(struct vhsm_ct *ct, u32 bytes)
{
	WRITE_ONCE(ct->npending, ct->npending - 1);
	WRITE_ONCE(ct->queued, ct->queued - bytes);
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

static void vhsm_pending_link(struct vhsm_pending *p)
{
	struct vhsm_net *vn = vhsm_pernet(sock_net(p->sk));
	struct vhsm_pending *pos;

	lockdep_assert_held(&vhsm_lock);

	hash_add(vhsm_pending_hash, &p->hnode, p->req_id);
	list_add_tail(&p->client_node, &vn->pending);
	vhsm_charge(p->ct, p->charge);
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

/* Take @p out of the table: no longer charged, no longer findable. */
static void vhsm_pending_unlink(struct vhsm_pending *p)
{
	lockdep_assert_held(&vhsm_lock);

	hash_del(&p->hnode);
	list_del(&p->dl_node);
	list_del_init(&p->client_node);
	vhsm_uncharge(p->ct, p->charge);
	WRITE_ONCE(vhsm_npending, vhsm_npending - 1);
}

/* Take @p out of the table to finish it after unlocking. */
static void vhsm_pending_detach(struct vhsm_pending *p, struct list_head *to)
{
	vhsm_pending_unlink(p);
	list_add_tail(&p->dl_node, to);
}

/*
 * Send what an entry that left the table owes its client, then free it.
 * @msg: the server's RESPONSE, or NULL for a payload-less one with @status.
 * Process context, vhsm_lock not held: the entry is no longer reachable.
 */
static void vhsm_pending_finish(struct vhsm_pending *p, struct sk_buff *msg,
				u32 status)
{
	struct nlmsghdr *nlh;
	int err = -ENOMEM;

	if (!p->sk) {
		vhsm_stat_inc(VHSM_STAT_CLIENT_GONE);
		nlmsg_free(msg);
		goto out;
	}

	if (!msg)
		msg = vhsm_nl_status_new(status);
	if (msg) {
		nlh = nlmsg_hdr(msg);
		nlh->nlmsg_pid = p->portid;
		nlh->nlmsg_seq = p->seq;
		err = vhsm_queue_to(p->sk, msg);
	}
	vhsm_stat_inc(err ? VHSM_STAT_UNDELIVERED : VHSM_STAT_RESPONSES);
	sock_put(p->sk);
out:
	vhsm_ct_put(p->ct);
	kfree(p);
}

/* Fail every entry on @list with RESPONSE{STATUS=@status}.  Process context. */
static void vhsm_pending_fail(struct list_head *list, u32 status,
			      enum vhsm_stat why)
{
	struct vhsm_pending *p, *tmp;

	list_for_each_entry_safe(p, tmp, list, dl_node) {
		list_del(&p->dl_node);
		vhsm_stat_inc(why);
		vhsm_pending_finish(p, NULL, status);
		cond_resched();
	}
}

/* Unregister the server; move every pending entry to @to.  Return: the
 * server's socket, for the caller to put after unlocking.
 */
static struct sock *vhsm_server_drop_locked(struct list_head *to)
{
	struct sock *sk = vhsm_server.sk;
	struct vhsm_pending *p, *tmp;

	lockdep_assert_held(&vhsm_lock);

	WRITE_ONCE(vhsm_server.sk, NULL);
	WRITE_ONCE(vhsm_server.net, NULL);
	list_for_each_entry_safe(p, tmp, &vhsm_deadlines, dl_node)
		vhsm_pending_detach(p, to);
	return sk;
}

/* After vhsm_server_drop_locked(), unlocked: release what it returned. */
static void vhsm_server_dropped(struct sock *sk, struct list_head *reset,
				const char *why)
{
	if (!sk)
		return;
	pr_info_ratelimited("server %s\n", why);
	sock_put(sk);
	vhsm_pending_fail(reset, ECONNRESET, VHSM_STAT_SERVER_GONE);
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
 * vhsm_server_register - register a socket as the server
 * @sk: the socket, in the netns bound to vhsm_veid (checked by the caller)
 * @portid: its port id
 * @ctid: the CTID of its netns
 * @extack: extended ack for error messages
 *
 * Registering the registered socket again is a no-op.
 *
 * Return: 0, -EBUSY if another socket is registered, -ESHUTDOWN while the
 * module is being unloaded.
 */
int vhsm_server_register(struct sock *sk, u32 portid, u32 ctid,
			 struct netlink_ext_ack *extack)
{
	bool registered = false;
	int err = 0;

	spin_lock_bh(&vhsm_lock);
	if (vhsm_closing) {
		NL_SET_ERR_MSG(extack, "module unloading");
		err = -ESHUTDOWN;
	} else if (vhsm_server.sk) {
		if (!vhsm_is_server_locked(sk)) {
			NL_SET_ERR_MSG(extack, "server already registered");
			err = -EBUSY;
		}
	} else {
		sock_hold(sk);
		vhsm_server.portid = portid;
		vhsm_server.tgid = task_tgid_nr(current);
		vhsm_server.ctid = ctid;
		vhsm_server.cookie = vhsm_net_cookie(sock_net(sk));
		WRITE_ONCE(vhsm_server.net, sock_net(sk));
		WRITE_ONCE(vhsm_server.sk, sk);
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
 * @sk: the sending socket
 * @extack: extended ack for error messages
 *
 * Pending requests fail with ECONNRESET.
 *
 * Return: 0, or -EPERM if the sender is not the registered server.
 */
int vhsm_server_unregister(struct sock *sk, struct netlink_ext_ack *extack)
{
	struct sock *dropped = NULL;
	LIST_HEAD(reset);

	spin_lock_bh(&vhsm_lock);
	if (vhsm_is_server_locked(sk))
		dropped = vhsm_server_drop_locked(&reset);
	spin_unlock_bh(&vhsm_lock);

	if (!dropped) {
		NL_SET_ERR_MSG(extack, "not the registered server");
		return -EPERM;
	}
	vhsm_server_dropped(dropped, &reset, "unregistered");
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
	struct sock *dropped = NULL;
	LIST_HEAD(reset);

	spin_lock_bh(&vhsm_lock);
	if (vhsm_server.sk && net_eq(sock_net(vhsm_server.sk), net))
		dropped = vhsm_server_drop_locked(&reset);
	spin_unlock_bh(&vhsm_lock);

	vhsm_server_dropped(dropped, &reset, "dropped: its CTID was unbound");
}

/**
 * vhsm_forward - record a request and deliver it to the server
 * @client: the client's socket
 * @portid: its port id
 * @seq: nlmsg_seq of the client's REQUEST
 * @ct: the sender's container; the reference is consumed
 * @req_id: the id stamped in @msg
 * @msg: the DELIVER message; always consumed
 * @extack: extended ack for error messages
 *
 * Counts exactly one of FORWARDED, NO_SERVER, QUOTA or SERVER_BUSY.
 *
 * Return: 0 if the server's socket queued the message; -ECONNREFUSED (no
 * server), -ENOBUFS (the container's quota or share), -EAGAIN (table or
 * server queue full), -ENOMEM.
 */
int vhsm_forward(struct sock *client, u32 portid, u32 seq,
		 struct vhsm_ct *ct, u64 req_id, struct sk_buff *msg,
		 struct netlink_ext_ack *extack)
{
	struct vhsm_pending *p;
	unsigned int timeout;
	struct sock *server;
	int err;

	p = kzalloc(sizeof(*p), GFP_KERNEL_ACCOUNT);
	if (!p) {
		nlmsg_free(msg);
		vhsm_ct_put(ct);
		vhsm_stat_inc(VHSM_STAT_SERVER_BUSY);
		NL_SET_ERR_MSG(extack, "out of memory");
		return -ENOMEM;
	}
	p->ct = ct;
	p->sk = client;
	p->portid = portid;
	p->seq = seq;
	p->req_id = req_id;
	p->charge = msg->truesize + vhsm_cancel_reserve;
	INIT_LIST_HEAD(&p->client_node);
	timeout = clamp(READ_ONCE(vhsm_timeout_ms), VHSM_TIMEOUT_MIN_MS,
			VHSM_TIMEOUT_MAX_MS);

	spin_lock_bh(&vhsm_lock);
	server = vhsm_server.sk;
	if (!server) {
		vhsm_stat_inc(VHSM_STAT_NO_SERVER);
		NL_SET_ERR_MSG(extack, "no server registered");
		err = -ECONNREFUSED;
		goto unlock;
	}
	if (ct->npending >= READ_ONCE(vhsm_max_pending_per_ct)) {
		vhsm_stat_inc(VHSM_STAT_QUOTA);
		NL_SET_ERR_MSG(extack, "too many pending requests from this container");
		err = -ENOBUFS;
		goto unlock;
	}
	if (ct->queued && ct->queued + p->charge > vhsm_ct_budget(server)) {
		vhsm_stat_inc(VHSM_STAT_QUOTA);
		NL_SET_ERR_MSG(extack, "this container's share of the server queue is full");
		err = -ENOBUFS;
		goto unlock;
	}
	if (vhsm_npending >= READ_ONCE(vhsm_max_pending)) {
		vhsm_stat_inc(VHSM_STAT_SERVER_BUSY);
		NL_SET_ERR_MSG(extack, "server busy");
		err = -EAGAIN;
		goto unlock;
	}

	err = vhsm_queue_to(server, msg);
	msg = NULL;
	if (err == -ECONNREFUSED) {
		/* Socket closing; URELEASE will drop the registration. */
		vhsm_stat_inc(VHSM_STAT_NO_SERVER);
		NL_SET_ERR_MSG(extack, "no server registered");
		goto unlock;
	}
	if (err) {
		vhsm_stat_inc(VHSM_STAT_SERVER_BUSY);
		NL_SET_ERR_MSG(extack, "server queue full");
		err = -EAGAIN;
		goto unlock;
	}

	/* In the table before the lock is dropped: a REPLY waits for it and
	 * then finds the entry.
	 */
	sock_hold(client);
	p->deadline = jiffies + msecs_to_jiffies(timeout);
	vhsm_pending_link(p);
	vhsm_stat_inc(VHSM_STAT_FORWARDED);
	p = NULL;
unlock:
	spin_unlock_bh(&vhsm_lock);
	nlmsg_free(msg);
	if (p) {
		vhsm_ct_put(p->ct);
		kfree(p);
	}
	return err;
}

/**
 * vhsm_reply_check - whether the sender of a REPLY is the server
 * @sk: the sending socket
 * @extack: extended ack for error messages
 *
 * Counts BAD_REPLY on refusal.
 *
 * Return: 0, or -EPERM.
 */
int vhsm_reply_check(struct sock *sk, struct netlink_ext_ack *extack)
{
	bool ok;

	spin_lock_bh(&vhsm_lock);
	ok = vhsm_is_server_locked(sk);
	spin_unlock_bh(&vhsm_lock);

	if (ok)
		return 0;
	vhsm_stat_inc(VHSM_STAT_BAD_REPLY);
	NL_SET_ERR_MSG(extack, "not the registered server");
	return -EPERM;
}

/**
 * vhsm_reply - complete a pending request with the server's reply
 * @sk: the sending socket
 * @req_id: the request id the server answers
 * @msg: the RESPONSE for the client, its nlmsg_pid and nlmsg_seq still to be
 *	filled in; always consumed
 * @extack: extended ack for error messages
 *
 * A client that went away is not the server's fault: the reply then counts
 * as REPLIES and CLIENT_GONE (or UNDELIVERED), and 0 is returned.
 *
 * Return: 0, -EPERM if the sender is not the server, -ENOENT for an unknown
 * or expired id (both counted as BAD_REPLY).
 */
int vhsm_reply(struct sock *sk, u64 req_id, struct sk_buff *msg,
	       struct netlink_ext_ack *extack)
{
	struct vhsm_pending *p = NULL, *pos;
	int err = 0;

	spin_lock_bh(&vhsm_lock);
	if (!vhsm_is_server_locked(sk)) {
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
unlock:
	spin_unlock_bh(&vhsm_lock);

	if (p)
		vhsm_pending_finish(p, msg, 0);
	else
		nlmsg_free(msg);
	return err;
}

/* Tell the server that the requests in @ids lost their client. */
static void vhsm_cancel_send(struct sock *server, const u64 *ids,
			     unsigned int n)
{
	struct sk_buff *msg = vhsm_nl_cancel_new(ids, n);

	if (msg && !vhsm_queue_to(server, msg))
		vhsm_stat_inc(VHSM_STAT_CANCELS);
}

/*
 * Orphan up to VHSM_CANCEL_MAX_IDS entries of the released socket
 * (@portid, closed: a newer socket may have bound the same port id),
 * recording their ids in @ids if not NULL.  Return: how many; *@more if
 * some were left for another pass.  The server, if any and if there is a
 * CANCEL to send, is returned held in *@server.
 */
static unsigned int vhsm_orphan_locked(struct vhsm_net *vn, u32 portid,
				       u64 *ids, bool *more,
				       struct sock **server)
{
	struct vhsm_pending *p, *tmp;
	unsigned int n = 0;

	lockdep_assert_held(&vhsm_lock);

	*more = false;
	list_for_each_entry_safe(p, tmp, &vn->pending, client_node) {
		if (p->portid != portid || !sock_flag(p->sk, SOCK_DEAD))
			continue;
		if (ids && n == VHSM_CANCEL_MAX_IDS) {
			*more = true;
			break;
		}
		list_del_init(&p->client_node);
		/* Never the last reference: netlink_release() holds one
		 * until after an RCU grace period.
		 */
		sock_put(p->sk);
		p->sk = NULL;
		vhsm_stat_inc(VHSM_STAT_ORPHANED);
		if (ids)
			ids[n] = p->req_id;
		n++;
	}

	*server = NULL;
	if (ids && n && vhsm_server.sk) {
		*server = vhsm_server.sk;
		sock_hold(*server);
	}
	return n;
}

/**
 * vhsm_socket_release - a generic netlink socket was closed
 * @net: its network namespace
 * @portid: its port id
 *
 * Orphans the pending requests it sent: they stay charged until the server
 * answers them or they expire, and the server gets CANCELs naming them.  If
 * it was the server's socket, drops the registration.  Process context
 * (NETLINK_URELEASE), after the socket was unhashed and orphaned.
 */
void vhsm_socket_release(struct net *net, u32 portid)
{
	struct vhsm_net *vn = vhsm_pernet(net);
	struct sock *dropped = NULL, *server;
	LIST_HEAD(reset);
	bool more;
	u64 *ids;
	u32 n;

	/* Cheap exit for the common case.  Neither can gain anything of this
	 * socket's any more: it is closed, so it neither sends nor registers.
	 */
	if (list_empty_careful(&vn->pending) && READ_ONCE(vhsm_server.net) != net)
		return;

	/* Without memory for the ids the entries are orphaned all the same;
	 * only the CANCELs are lost (the server then does the work).
	 */
	ids = kmalloc_array(VHSM_CANCEL_MAX_IDS, sizeof(*ids), GFP_KERNEL);
	do {
		spin_lock_bh(&vhsm_lock);
		n = vhsm_orphan_locked(vn, portid, ids, &more, &server);
		if (!dropped && vhsm_server.sk && vhsm_server.portid == portid &&
		    net_eq(sock_net(vhsm_server.sk), net) &&
		    sock_flag(vhsm_server.sk, SOCK_DEAD))
			dropped = vhsm_server_drop_locked(&reset);
		spin_unlock_bh(&vhsm_lock);

		if (server) {
			vhsm_cancel_send(server, ids, n);
			sock_put(server);
		}
	} while (more);
	kfree(ids);

	vhsm_server_dropped(dropped, &reset, "socket closed");
}

/**
 * vhsm_pending_shutdown - first step of module unload
 *
 * Refuses new registrations and requests from now on, drops the server and
 * fails every pending request with ECONNRESET.
 */
void vhsm_pending_shutdown(void)
{
	struct sock *dropped;
	LIST_HEAD(reset);

	spin_lock_bh(&vhsm_lock);
	vhsm_closing = true;
	dropped = vhsm_server_drop_locked(&reset);
	spin_unlock_bh(&vhsm_lock);

	cancel_delayed_work_sync(&vhsm_timeout_work);
	vhsm_server_dropped(dropped, &reset, "unregistered: module unloading");
}

/**
 * vhsm_pending_cleanup - last step of module unload, after the family is gone
 */
void vhsm_pending_cleanup(void)
{
	cancel_delayed_work_sync(&vhsm_timeout_work);
	WARN_ON_ONCE(vhsm_npending);
}
