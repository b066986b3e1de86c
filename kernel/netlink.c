// SPDX-License-Identifier: GPL-2.0
/*
 * VHSM transport: the generic netlink family "vhsm" (see uapi/vhsm.h and
 * vhsm.yaml).
 *
 * Every op has its own policy listing only its own attributes, and
 * resv_start_op is 0, so the core validates every message strictly: an
 * attribute an op does not list (e.g. a CTID or PID in a client REQUEST) is
 * rejected before the doit runs, and ops without attributes accept none.
 * DELIVER, RESPONSE and CANCEL are kernel-to-user only and have no op, so a
 * message with those commands gets EOPNOTSUPP.
 */

#include <linux/kernel.h>
#include <linux/pid.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <net/genetlink.h>
#include <net/netlink.h>
#include <net/sock.h>

#include "vhsm_transport.h"

static const struct nla_policy vhsm_ct_bind_nl_policy[VHSM_A_PIDNS_PID + 1] = {
	[VHSM_A_CTID] = NLA_POLICY_MIN(NLA_U32, 1),
	[VHSM_A_PID] = { .type = NLA_U32 },
	[VHSM_A_NETNS_FD] = { .type = NLA_U32 },
	[VHSM_A_PIDNS_PID] = { .type = NLA_U32 },
};

static const struct nla_policy vhsm_ct_unbind_nl_policy[VHSM_A_CTID + 1] = {
	[VHSM_A_CTID] = NLA_POLICY_MIN(NLA_U32, 1),
};

/* The payload limit is checked in code: a policy .len would answer ERANGE,
 * the ABI says EMSGSIZE.
 */
static const struct nla_policy vhsm_reply_nl_policy[VHSM_A_PAYLOAD + 1] = {
	[VHSM_A_REQ_ID] = { .type = NLA_U64 },
	[VHSM_A_PAYLOAD] = { .type = NLA_BINARY },
};

static const struct nla_policy vhsm_request_nl_policy[VHSM_A_PAYLOAD + 1] = {
	[VHSM_A_PAYLOAD] = { .type = NLA_BINARY },
};

static struct genl_family vhsm_genl_family;

/* Host admin ops: CAP_NET_ADMIN in the initial user namespace (the op flag)
 * is not enough, as a privileged container has it too.
 */
static int vhsm_admin_check(const struct net *net,
			    struct netlink_ext_ack *extack)
{
	if (net_eq(net, &init_net))
		return 0;
	NL_SET_ERR_MSG(extack, "admin ops only from the initial netns");
	return -EPERM;
}

/* The pid namespace of the process @nr in the caller's pid namespace. */
static struct pid_namespace *vhsm_pidns_of(u32 nr)
{
	struct pid_namespace *ns = ERR_PTR(-ESRCH);
	struct task_struct *task = NULL;
	struct pid *pid;

	if (nr > INT_MAX)
		return ns;
	pid = find_get_pid(nr);
	if (pid)
		task = get_pid_task(pid, PIDTYPE_PID);
	put_pid(pid);
	if (!task)
		return ns;
	rcu_read_lock();
	/* NULL once the task has exited. */
	if (task_active_pid_ns(task))
		ns = get_pid_ns(task_active_pid_ns(task));
	rcu_read_unlock();
	put_task_struct(task);
	return ns;
}

/*
 * CT_BIND: the netns comes from PID or NETNS_FD; the pid namespace its
 * stamps are counted in from PIDNS_PID if given, else from PID, else it is
 * the admin's own (for a bare netns, as with "ip netns add").
 */
static int vhsm_nl_ct_bind_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct nlattr **attrs = info->attrs;
	struct pid_namespace *pidns;
	struct nlattr *pidns_attr;
	struct net *net;
	u32 ctid, id;
	int err;

	err = vhsm_admin_check(genl_info_net(info), extack);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(info, VHSM_A_CTID)) {
		NL_SET_ERR_MSG(extack, "CTID required");
		return -EINVAL;
	}
	ctid = nla_get_u32(attrs[VHSM_A_CTID]);

	if (attrs[VHSM_A_PID] && attrs[VHSM_A_NETNS_FD]) {
		NL_SET_ERR_MSG_ATTR(extack, attrs[VHSM_A_NETNS_FD],
				    "PID and NETNS_FD are exclusive");
		return -EINVAL;
	}
	if (attrs[VHSM_A_PID]) {
		id = nla_get_u32(attrs[VHSM_A_PID]);
		net = id > INT_MAX ? ERR_PTR(-ESRCH) : get_net_ns_by_pid(id);
		if (IS_ERR(net)) {
			NL_SET_ERR_MSG_ATTR(extack, attrs[VHSM_A_PID],
					    "no such process");
			return PTR_ERR(net);
		}
	} else if (attrs[VHSM_A_NETNS_FD]) {
		id = nla_get_u32(attrs[VHSM_A_NETNS_FD]);
		net = id > INT_MAX ? ERR_PTR(-EBADF) : get_net_ns_by_fd(id);
		if (IS_ERR(net)) {
			NL_SET_ERR_MSG_ATTR(extack, attrs[VHSM_A_NETNS_FD],
					    "not a netns fd");
			return PTR_ERR(net);
		}
	} else {
		NL_SET_ERR_MSG(extack, "PID or NETNS_FD required");
		return -EINVAL;
	}

	pidns_attr = attrs[VHSM_A_PIDNS_PID] ?: attrs[VHSM_A_PID];
	if (pidns_attr)
		pidns = vhsm_pidns_of(nla_get_u32(pidns_attr));
	else
		pidns = get_pid_ns(task_active_pid_ns(current));
	if (IS_ERR(pidns)) {
		NL_SET_ERR_MSG_ATTR(extack, pidns_attr, "no such process");
		err = PTR_ERR(pidns);
		goto out;
	}

	err = vhsm_ct_bind(net, pidns, ctid, extack);
	put_pid_ns(pidns);
out:
	put_net(net);
	return err;
}

static int vhsm_nl_ct_unbind_doit(struct sk_buff *skb, struct genl_info *info)
{
	int err;

	err = vhsm_admin_check(genl_info_net(info), info->extack);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(info, VHSM_A_CTID)) {
		NL_SET_ERR_MSG(info->extack, "CTID required");
		return -EINVAL;
	}

	return vhsm_ct_unbind(nla_get_u32(info->attrs[VHSM_A_CTID]),
			      info->extack);
}

static int vhsm_nl_ct_get_start(struct netlink_callback *cb)
{
	/* cb->extack is only set here from 6.3 on; NULL is fine. */
	return vhsm_admin_check(sock_net(cb->skb->sk), cb->extack);
}

static int vhsm_nl_fill_binding(struct sk_buff *skb,
				struct netlink_callback *cb,
				struct vhsm_net *vn)
{
	const struct vhsm_ct *ct = vhsm_ct_bound(vn);
	void *hdr;

	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			  &vhsm_genl_family, NLM_F_MULTI, VHSM_CMD_CT_GET);
	if (!hdr)
		return -EMSGSIZE;

	if (nla_put_u32(skb, VHSM_A_CTID, ct->ctid) ||
	    nla_put_u64_64bit(skb, VHSM_A_NETNS_COOKIE,
			      vhsm_net_cookie(vn->net), VHSM_A_PAD) ||
	    nla_put_u32(skb, VHSM_A_NETNS_INO, vn->net->ns.inum) ||
	    nla_put_u32(skb, VHSM_A_PIDNS_INO, ct->pidns->ns.inum) ||
	    nla_put_u32(skb, VHSM_A_PENDING, READ_ONCE(ct->npending)) ||
	    nla_put_u32(skb, VHSM_A_QUEUED_BYTES, READ_ONCE(ct->queued))) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/* One message per binding, in CTID order; cb->args[0] is the last CTID sent,
 * so a dump resumes correctly even if bindings change between its parts.
 */
static int vhsm_nl_ct_get_dumpit(struct sk_buff *skb,
				 struct netlink_callback *cb)
{
	u32 last = cb->args[0];
	struct vhsm_net *vn;
	int err = 0;

	mutex_lock(&vhsm_bind_lock);
	list_for_each_entry(vn, &vhsm_bindings, bind_node) {
		u32 ctid = vhsm_net_ctid(vn);

		if (ctid <= last)
			continue;
		err = vhsm_nl_fill_binding(skb, cb, vn);
		if (err)
			break;
		last = ctid;
	}
	mutex_unlock(&vhsm_bind_lock);

	cb->args[0] = last;
	if (err && !skb->len)
		return err;
	return skb->len;
}

static int vhsm_nl_put_server(struct sk_buff *msg,
			      const struct vhsm_server_info *srv)
{
	struct nlattr *nest;

	nest = nla_nest_start(msg, VHSM_A_SERVER);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u32(msg, VHSM_SERVER_A_CTID, srv->ctid) ||
	    nla_put_u64_64bit(msg, VHSM_SERVER_A_NETNS_COOKIE, srv->cookie,
			      VHSM_SERVER_A_PAD) ||
	    nla_put_u32(msg, VHSM_SERVER_A_PID, srv->tgid) ||
	    nla_put_u32(msg, VHSM_SERVER_A_PORTID, srv->portid)) {
		nla_nest_cancel(msg, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(msg, nest);
	return 0;
}

static int vhsm_nl_stats_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct vhsm_server_info srv;
	struct sk_buff *msg;
	struct nlattr *nest;
	void *hdr;
	int i, err;

	err = vhsm_admin_check(genl_info_net(info), info->extack);
	if (err)
		return err;

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &vhsm_genl_family, 0,
				VHSM_CMD_STATS_GET);
	if (!hdr)
		goto nla_put_failure;

	nest = nla_nest_start(msg, VHSM_A_STATS);
	if (!nest)
		goto nla_put_failure;
	for (i = VHSM_STAT_REQUESTS; i <= VHSM_STAT_MAX; i++)
		if (nla_put_u64_64bit(msg, i, vhsm_stat_read(i),
				      VHSM_STAT_PAD))
			goto nla_put_failure;
	nla_nest_end(msg, nest);

	if (nla_put_u32(msg, VHSM_A_PENDING, vhsm_pending_count()))
		goto nla_put_failure;
	if (vhsm_server_get(&srv) && vhsm_nl_put_server(msg, &srv))
		goto nla_put_failure;

	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

nla_put_failure:
	nlmsg_free(msg);
	return -EMSGSIZE;
}

static int vhsm_nl_server_register_doit(struct sk_buff *skb,
					struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct net *net = genl_info_net(info);
	int err;

	if (!vhsm_veid) {
		NL_SET_ERR_MSG(extack, "vhsm_veid not set");
		return -EACCES;
	}

	/* Under vhsm_bind_lock so that the binding cannot change until the
	 * registration is recorded (CT_UNBIND then drops it).
	 */
	mutex_lock(&vhsm_bind_lock);
	if (vhsm_net_ctid(vhsm_pernet(net)) != vhsm_veid) {
		NL_SET_ERR_MSG(extack, "netns not bound to vhsm_veid");
		err = -EACCES;
	} else {
		err = vhsm_server_register(NETLINK_CB(skb).sk,
					   info->snd_portid, vhsm_veid, extack);
	}
	mutex_unlock(&vhsm_bind_lock);
	return err;
}

static int vhsm_nl_server_unregister_doit(struct sk_buff *skb,
					  struct genl_info *info)
{
	return vhsm_server_unregister(NETLINK_CB(skb).sk, info->extack);
}

static struct sk_buff *vhsm_nl_msg_new(size_t attrs_len, u8 cmd, gfp_t gfp,
				       void **hdr)
{
	struct sk_buff *msg;

	msg = genlmsg_new(attrs_len, gfp | __GFP_NOWARN);
	if (!msg)
		return NULL;
	/* nlmsg_pid and nlmsg_seq: 0 for the server, the client's for a
	 * RESPONSE, set by pending.c when it knows them.
	 */
	*hdr = genlmsg_put(msg, 0, 0, &vhsm_genl_family, 0, cmd);
	if (!*hdr) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/**
 * vhsm_nl_status_new - a payload-less RESPONSE
 * @status: a positive errno
 *
 * Return: the message, or NULL without memory.
 */
struct sk_buff *vhsm_nl_status_new(u32 status)
{
	struct sk_buff *msg;
	void *hdr;

	msg = vhsm_nl_msg_new(nla_total_size(sizeof(u32)), VHSM_CMD_RESPONSE,
			      GFP_KERNEL, &hdr);
	if (!msg)
		return NULL;
	if (nla_put_u32(msg, VHSM_A_STATUS, status)) {
		nlmsg_free(msg);
		return NULL;
	}
	genlmsg_end(msg, hdr);
	return msg;
}

/**
 * vhsm_nl_cancel_new - a CANCEL naming requests whose client is gone
 * @req_ids: their ids
 * @n: how many, at least 1
 *
 * Return: the message, or NULL without memory.
 */
struct sk_buff *vhsm_nl_cancel_new(const u64 *req_ids, unsigned int n)
{
	struct sk_buff *msg;
	unsigned int i;
	void *hdr;

	msg = vhsm_nl_msg_new(n * nla_total_size_64bit(sizeof(u64)),
			      VHSM_CMD_CANCEL, GFP_KERNEL, &hdr);
	if (!msg)
		return NULL;
	for (i = 0; i < n; i++) {
		if (nla_put_u64_64bit(msg, VHSM_A_REQ_ID, req_ids[i],
				      VHSM_A_PAD)) {
			nlmsg_free(msg);
			return NULL;
		}
	}
	genlmsg_end(msg, hdr);
	return msg;
}

/* RESPONSE carries the status and the payload only: nothing in it (such as
 * the global request id) changes with other containers' activity.
 */
static int vhsm_nl_reply_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct sock *sk = NETLINK_CB(skb).sk;
	const struct nlattr *payload;
	struct sk_buff *msg;
	u64 req_id;
	void *hdr;
	int err;

	err = vhsm_reply_check(sk, extack);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(info, VHSM_A_REQ_ID) ||
	    GENL_REQ_ATTR_CHECK(info, VHSM_A_PAYLOAD)) {
		NL_SET_ERR_MSG(extack, "REQ_ID and PAYLOAD required");
		return -EINVAL;
	}
	req_id = nla_get_u64(info->attrs[VHSM_A_REQ_ID]);
	payload = info->attrs[VHSM_A_PAYLOAD];
	if (nla_len(payload) > VHSM_PAYLOAD_MAX) {
		vhsm_stat_inc(VHSM_STAT_BAD_REPLY);
		NL_SET_ERR_MSG_ATTR(extack, payload, "payload too large");
		return -EMSGSIZE;
	}

	msg = vhsm_nl_msg_new(nla_total_size(sizeof(u32)) +
			      nla_total_size(nla_len(payload)),
			      VHSM_CMD_RESPONSE, GFP_KERNEL, &hdr);
	if (!msg)
		return -ENOMEM;
	if (nla_put_u32(msg, VHSM_A_STATUS, 0) ||
	    nla_put(msg, VHSM_A_PAYLOAD, nla_len(payload), nla_data(payload))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);

	return vhsm_reply(sk, req_id, msg, extack);
}

/* The DELIVER for the server: the request id, the stamps, the payload.
 * Charged to the sender's memory cgroup.
 */
static struct sk_buff *vhsm_nl_deliver_new(struct net *net,
					   const struct vhsm_sender *sender,
					   u64 req_id,
					   const struct nlattr *payload)
{
	struct sk_buff *msg;
	void *hdr;

	msg = vhsm_nl_msg_new(3 * nla_total_size_64bit(sizeof(u64)) +
			      4 * nla_total_size(sizeof(u32)) +
			      nla_total_size(nla_len(payload)),
			      VHSM_CMD_DELIVER, GFP_KERNEL_ACCOUNT, &hdr);
	if (!msg)
		return NULL;
	if (nla_put_u64_64bit(msg, VHSM_A_REQ_ID, req_id, VHSM_A_PAD) ||
	    nla_put_u32(msg, VHSM_A_CTID, sender->ct->ctid) ||
	    nla_put_u64_64bit(msg, VHSM_A_NETNS_COOKIE, vhsm_net_cookie(net),
			      VHSM_A_PAD) ||
	    nla_put_u32(msg, VHSM_A_PID, sender->pid) ||
	    nla_put_u64_64bit(msg, VHSM_A_PROC_START, sender->proc_start,
			      VHSM_A_PAD) ||
	    nla_put_u32(msg, VHSM_A_UID, sender->uid) ||
	    nla_put_u32(msg, VHSM_A_GID, sender->gid) ||
	    nla_put(msg, VHSM_A_PAYLOAD, nla_len(payload), nla_data(payload))) {
		nlmsg_free(msg);
		return NULL;
	}
	genlmsg_end(msg, hdr);
	return msg;
}

/*
 * A REQUEST that passed the policy and carries a PAYLOAD is counted in
 * REQUESTS and then in exactly one of UNBOUND, FOREIGN_PID, TOO_BIG,
 * NO_SERVER, QUOTA, SERVER_BUSY or FORWARDED, in that order of checks:
 *   REQUESTS == UNBOUND + FOREIGN_PID + TOO_BIG + NO_SERVER + QUOTA +
 *               SERVER_BUSY + FORWARDED
 * (an allocation failure, -ENOMEM, counts as SERVER_BUSY).
 */
static int vhsm_nl_request_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct net *net = genl_info_net(info);
	const struct nlattr *payload;
	struct vhsm_sender sender;
	struct sk_buff *msg;
	u64 req_id;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, VHSM_A_PAYLOAD)) {
		NL_SET_ERR_MSG(extack, "PAYLOAD required");
		return -EINVAL;
	}
	payload = info->attrs[VHSM_A_PAYLOAD];

	vhsm_stat_inc(VHSM_STAT_REQUESTS);

	err = vhsm_sender_get(net, &sender, extack);
	if (err)
		return err;
	if (nla_len(payload) > VHSM_PAYLOAD_MAX) {
		vhsm_stat_inc(VHSM_STAT_TOO_BIG);
		NL_SET_ERR_MSG_ATTR(extack, payload, "payload too large");
		err = -EMSGSIZE;
		goto err_put;
	}
	/* Spares the allocation; vhsm_forward() decides under the lock. */
	if (!vhsm_server_present()) {
		vhsm_stat_inc(VHSM_STAT_NO_SERVER);
		NL_SET_ERR_MSG(extack, "no server registered");
		err = -ECONNREFUSED;
		goto err_put;
	}

	req_id = vhsm_next_req_id();
	msg = vhsm_nl_deliver_new(net, &sender, req_id, payload);
	if (!msg) {
		vhsm_stat_inc(VHSM_STAT_SERVER_BUSY);
		NL_SET_ERR_MSG(extack, "out of memory");
		err = -ENOMEM;
		goto err_put;
	}

	return vhsm_forward(NETLINK_CB(skb).sk, info->snd_portid,
			    info->snd_seq, sender.ct, req_id, msg, extack);

err_put:
	vhsm_ct_put(sender.ct);
	return err;
}

static const struct genl_ops vhsm_nl_ops[] = {
	{
		.cmd = VHSM_CMD_CT_BIND,
		.flags = GENL_ADMIN_PERM,
		.doit = vhsm_nl_ct_bind_doit,
		.policy = vhsm_ct_bind_nl_policy,
		.maxattr = VHSM_A_PIDNS_PID,
	},
	{
		.cmd = VHSM_CMD_CT_UNBIND,
		.flags = GENL_ADMIN_PERM,
		.doit = vhsm_nl_ct_unbind_doit,
		.policy = vhsm_ct_unbind_nl_policy,
		.maxattr = VHSM_A_CTID,
	},
	{
		.cmd = VHSM_CMD_CT_GET,
		.flags = GENL_ADMIN_PERM,
		.start = vhsm_nl_ct_get_start,
		.dumpit = vhsm_nl_ct_get_dumpit,
	},
	{
		.cmd = VHSM_CMD_STATS_GET,
		.flags = GENL_ADMIN_PERM,
		.doit = vhsm_nl_stats_get_doit,
	},
	{
		.cmd = VHSM_CMD_SERVER_REGISTER,
		.flags = GENL_UNS_ADMIN_PERM,
		.doit = vhsm_nl_server_register_doit,
	},
	{
		/* No flag: only the registered socket may (checked), and a
		 * server may drop its privileges once registered.
		 */
		.cmd = VHSM_CMD_SERVER_UNREGISTER,
		.doit = vhsm_nl_server_unregister_doit,
	},
	{
		.cmd = VHSM_CMD_REPLY,
		.doit = vhsm_nl_reply_doit,
		.policy = vhsm_reply_nl_policy,
		.maxattr = VHSM_A_PAYLOAD,
	},
	{
		.cmd = VHSM_CMD_REQUEST,
		.doit = vhsm_nl_request_doit,
		.policy = vhsm_request_nl_policy,
		.maxattr = VHSM_A_PAYLOAD,
	},
};

static struct genl_family vhsm_genl_family __ro_after_init = {
	.name = VHSM_GENL_NAME,
	.version = VHSM_GENL_VERSION,
	.maxattr = VHSM_A_MAX,
	.netnsok = true,
	.parallel_ops = true,
	.resv_start_op = 0,	/* validate every op strictly */
	.module = THIS_MODULE,
	.ops = vhsm_nl_ops,
	.n_ops = ARRAY_SIZE(vhsm_nl_ops),
};

/**
 * vhsm_genl_register - register the "vhsm" family
 *
 * Return: 0 or a negative errno.
 */
int __init vhsm_genl_register(void)
{
	return genl_register_family(&vhsm_genl_family);
}

/**
 * vhsm_genl_unregister - unregister the "vhsm" family
 *
 * Returns once no doit or dump of the family is running.
 */
void vhsm_genl_unregister(void)
{
	genl_unregister_family(&vhsm_genl_family);
}
