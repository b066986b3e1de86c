// SPDX-License-Identifier: GPL-2.0
/*
 * VHSM transport: the generic netlink family "vhsm" (see uapi/vhsm.h and
 * vhsm.yaml).
 *
 * Every op has its own policy listing only its own attributes, and
 * resv_start_op is 0, so the core validates every message strictly: an
 * attribute an op does not list (e.g. a CTID or PID in a client REQUEST) is
 * rejected before the doit runs, and ops without attributes accept none.
 * DELIVER and RESPONSE are kernel-to-user only and have no op, so a message
 * with those commands gets EOPNOTSUPP.
 */

#include <linux/cred.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/uidgid.h>
#include <net/genetlink.h>
#include <net/netlink.h>
#include <net/sock.h>

#include "vhsm_transport.h"

static const struct nla_policy vhsm_ct_bind_nl_policy[VHSM_A_NETNS_FD + 1] = {
	[VHSM_A_CTID] = NLA_POLICY_MIN(NLA_U32, 1),
	[VHSM_A_PID] = { .type = NLA_U32 },
	[VHSM_A_NETNS_FD] = { .type = NLA_U32 },
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

static int vhsm_nl_ct_bind_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct nlattr **attrs = info->attrs;
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

	err = vhsm_ct_bind(net, ctid, extack);
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
				const struct vhsm_net *vn)
{
	void *hdr;

	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			  &vhsm_genl_family, NLM_F_MULTI, VHSM_CMD_CT_GET);
	if (!hdr)
		return -EMSGSIZE;

	if (nla_put_u32(skb, VHSM_A_CTID, vn->ctid) ||
	    nla_put_u64_64bit(skb, VHSM_A_NETNS_COOKIE,
			      vhsm_net_cookie(vn->net), VHSM_A_PAD) ||
	    nla_put_u32(skb, VHSM_A_NETNS_INO, vn->net->ns.inum) ||
	    nla_put_u32(skb, VHSM_A_PENDING, READ_ONCE(vn->npending))) {
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
		if (vn->ctid <= last)
			continue;
		err = vhsm_nl_fill_binding(skb, cb, vn);
		if (err)
			break;
		last = vn->ctid;
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
	if (vhsm_net_ctid(net) != vhsm_veid) {
		NL_SET_ERR_MSG(extack, "netns not bound to vhsm_veid");
		err = -EACCES;
	} else {
		err = vhsm_server_register(net, info->snd_portid, vhsm_veid,
					   extack);
	}
	mutex_unlock(&vhsm_bind_lock);
	return err;
}

static int vhsm_nl_server_unregister_doit(struct sk_buff *skb,
					  struct genl_info *info)
{
	return vhsm_server_unregister(genl_info_net(info), info->snd_portid,
				      info->extack);
}

static struct sk_buff *vhsm_nl_msg_new(size_t attrs_len, u32 portid, u32 seq,
				       u8 cmd, void **hdr)
{
	struct sk_buff *msg;

	msg = genlmsg_new(attrs_len, GFP_KERNEL | __GFP_NOWARN);
	if (!msg)
		return NULL;
	*hdr = genlmsg_put(msg, portid, seq, &vhsm_genl_family, 0, cmd);
	if (!*hdr) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/**
 * vhsm_nl_send_status - send a payload-less RESPONSE to a client
 * @net: client's network namespace, referenced by the caller
 * @portid: client's port id
 * @seq: nlmsg_seq of the client's REQUEST
 * @req_id: the request id
 * @status: a positive errno
 *
 * Return: 0 if queued to the client, else a negative errno.
 */
int vhsm_nl_send_status(struct net *net, u32 portid, u32 seq, u64 req_id,
			u32 status)
{
	struct sk_buff *msg;
	void *hdr;

	msg = vhsm_nl_msg_new(nla_total_size_64bit(sizeof(u64)) +
			      nla_total_size(sizeof(u32)),
			      portid, seq, VHSM_CMD_RESPONSE, &hdr);
	if (!msg)
		return -ENOMEM;
	if (nla_put_u64_64bit(msg, VHSM_A_REQ_ID, req_id, VHSM_A_PAD) ||
	    nla_put_u32(msg, VHSM_A_STATUS, status)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_unicast(net, msg, portid);
}

static int vhsm_nl_reply_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct net *net = genl_info_net(info);
	const struct nlattr *payload;
	struct sk_buff *msg;
	u64 req_id;
	void *hdr;
	int err;

	err = vhsm_reply_check(net, info->snd_portid, extack);
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

	/* nlmsg_pid and nlmsg_seq are the client's, set by vhsm_reply(). */
	msg = vhsm_nl_msg_new(nla_total_size_64bit(sizeof(u64)) +
			      nla_total_size(sizeof(u32)) +
			      nla_total_size(nla_len(payload)),
			      0, 0, VHSM_CMD_RESPONSE, &hdr);
	if (!msg)
		return -ENOMEM;
	if (nla_put_u64_64bit(msg, VHSM_A_REQ_ID, req_id, VHSM_A_PAD) ||
	    nla_put_u32(msg, VHSM_A_STATUS, 0) ||
	    nla_put(msg, VHSM_A_PAYLOAD, nla_len(payload), nla_data(payload))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);

	return vhsm_reply(net, info->snd_portid, req_id, msg, extack);
}

/* The stamps are computed here, in the sending task (the doit runs inside
 * its sendmsg()): never from NETLINK_CB(skb).portid (an address, not a pid)
 * nor NETLINK_CREDS (forgeable with SCM_CREDENTIALS).
 */
static struct sk_buff *vhsm_nl_deliver_new(struct net *net, u32 ctid,
					   u64 req_id,
					   const struct nlattr *payload)
{
	struct user_namespace *uns = current_user_ns();
	struct sk_buff *msg;
	void *hdr;

	msg = vhsm_nl_msg_new(2 * nla_total_size_64bit(sizeof(u64)) +
			      4 * nla_total_size(sizeof(u32)) +
			      nla_total_size(nla_len(payload)),
			      0, 0, VHSM_CMD_DELIVER, &hdr);
	if (!msg)
		return NULL;
	if (nla_put_u64_64bit(msg, VHSM_A_REQ_ID, req_id, VHSM_A_PAD) ||
	    nla_put_u32(msg, VHSM_A_CTID, ctid) ||
	    nla_put_u64_64bit(msg, VHSM_A_NETNS_COOKIE, vhsm_net_cookie(net),
			      VHSM_A_PAD) ||
	    nla_put_u32(msg, VHSM_A_PID, task_tgid_vnr(current)) ||
	    nla_put_u32(msg, VHSM_A_UID, from_kuid_munged(uns, current_euid())) ||
	    nla_put_u32(msg, VHSM_A_GID, from_kgid_munged(uns, current_egid())) ||
	    nla_put(msg, VHSM_A_PAYLOAD, nla_len(payload), nla_data(payload))) {
		nlmsg_free(msg);
		return NULL;
	}
	genlmsg_end(msg, hdr);
	return msg;
}

/*
 * A REQUEST that passed the policy and carries a PAYLOAD is counted in
 * REQUESTS and then in exactly one of UNBOUND, TOO_BIG, NO_SERVER, QUOTA,
 * SERVER_BUSY or FORWARDED, in that order of checks:
 *   REQUESTS == UNBOUND + TOO_BIG + NO_SERVER + QUOTA + SERVER_BUSY + FORWARDED
 * (an allocation failure, -ENOMEM, counts as SERVER_BUSY).
 */
static int vhsm_nl_request_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct net *net = genl_info_net(info);
	const struct nlattr *payload;
	struct sk_buff *msg;
	u64 req_id;
	u32 ctid;

	if (GENL_REQ_ATTR_CHECK(info, VHSM_A_PAYLOAD)) {
		NL_SET_ERR_MSG(extack, "PAYLOAD required");
		return -EINVAL;
	}
	payload = info->attrs[VHSM_A_PAYLOAD];

	vhsm_stat_inc(VHSM_STAT_REQUESTS);

	ctid = vhsm_net_ctid(net);
	if (!ctid && !READ_ONCE(vhsm_allow_unbound)) {
		vhsm_stat_inc(VHSM_STAT_UNBOUND);
		NL_SET_ERR_MSG(extack, "container not bound to a CTID");
		return -EACCES;
	}
	if (nla_len(payload) > VHSM_PAYLOAD_MAX) {
		vhsm_stat_inc(VHSM_STAT_TOO_BIG);
		NL_SET_ERR_MSG_ATTR(extack, payload, "payload too large");
		return -EMSGSIZE;
	}
	/* Spares the allocation; vhsm_forward() decides under the lock. */
	if (!vhsm_server_present()) {
		vhsm_stat_inc(VHSM_STAT_NO_SERVER);
		NL_SET_ERR_MSG(extack, "no server registered");
		return -ECONNREFUSED;
	}

	req_id = vhsm_next_req_id();
	msg = vhsm_nl_deliver_new(net, ctid, req_id, payload);
	if (!msg) {
		vhsm_stat_inc(VHSM_STAT_SERVER_BUSY);
		NL_SET_ERR_MSG(extack, "out of memory");
		return -ENOMEM;
	}

	return vhsm_forward(net, info->snd_portid, info->snd_seq, req_id, msg,
			    extack);
}

static const struct genl_ops vhsm_nl_ops[] = {
	{
		.cmd = VHSM_CMD_CT_BIND,
		.flags = GENL_ADMIN_PERM,
		.doit = vhsm_nl_ct_bind_doit,
		.policy = vhsm_ct_bind_nl_policy,
		.maxattr = VHSM_A_NETNS_FD,
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
