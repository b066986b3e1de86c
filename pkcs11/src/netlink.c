/*
 * The vhsm generic netlink transport (kernel/uapi/vhsm.h), on libmnl.
 *
 * libmnl because it is the small, audited netlink helper Debian already
 * ships with iproute2 and nftables: message and attribute building, bounds
 * checked iteration (mnl_nlmsg_ok, mnl_attr_parse + mnl_attr_validate) and
 * nothing else. The receive loop is ours so that every datagram's sender is
 * checked to be the kernel (port 0): a root process in another netns could
 * otherwise address our socket with a forged reply.
 *
 * One socket per connection, one exchange at a time on it: replies are
 * matched by nlmsg_seq alone, stale ones (an earlier exchange that timed
 * out) are dropped.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <libmnl/libmnl.h>

#include "vhsm.h"
#include "transport.h"

/* Largest reply datagram: the payload plus headers and a few attributes. */
#define VT_RECV_BUF (VHSM_PAYLOAD_MAX + 4096)

struct vt_conn {
	struct mnl_socket *nl;
	uint16_t family;
	uint32_t seq;
	uint8_t buf[VT_RECV_BUF];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Receives one datagram from the kernel within the deadline. Returns its
 * length, or -errno (ETIMEDOUT, EPROTO for truncation).
 */
static ssize_t recv_from_kernel(struct vt_conn *c, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = mnl_socket_get_fd(c->nl), .events = POLLIN };
		int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			continue;
		struct sockaddr_nl from;
		struct iovec iov = { .iov_base = c->buf, .iov_len = sizeof(c->buf) };
		struct msghdr msg = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t len = recvmsg(pfd.fd, &msg, MSG_DONTWAIT);
		if (len < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (msg.msg_flags & MSG_TRUNC)
			return -EPROTO;
		if (msg.msg_namelen != sizeof(from) || from.nl_family != AF_NETLINK || from.nl_pid != 0)
			continue; /* not from the kernel: ignore */
		return len;
	}
}

/* NLMSG_ERROR for our seq: 0 for an ACK, else the positive errno. */
static int error_of(const struct nlmsghdr *nlh)
{
	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nlmsgerr))
		return EPROTO;
	const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
	if (err->error > 0 || err->error < -4095)
		return EPROTO;
	return -err->error;
}

static int ctrl_attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(attr);
	if (mnl_attr_type_valid(attr, CTRL_ATTR_MAX) <= 0)
		return MNL_CB_OK;
	if (type == CTRL_ATTR_FAMILY_ID && mnl_attr_validate(attr, MNL_TYPE_U16) < 0)
		return MNL_CB_ERROR;
	tb[type] = attr;
	return MNL_CB_OK;
}

/* Resolves the "vhsm" family id through nlctrl. */
static int resolve_family(struct vt_conn *c)
{
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = GENL_ID_CTRL;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = ++c->seq;
	struct genlmsghdr *genl = mnl_nlmsg_put_extra_header(nlh, sizeof(*genl));
	genl->cmd = CTRL_CMD_GETFAMILY;
	genl->version = 1;
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, VHSM_GENL_NAME);
	if (mnl_socket_sendto(c->nl, nlh, nlh->nlmsg_len) < 0)
		return errno;
	int64_t deadline = now_ms() + 5000;
	for (;;) {
		ssize_t len = recv_from_kernel(c, deadline);
		if (len < 0)
			return (int)-len;
		int rest = (int)len;
		for (const struct nlmsghdr *m = (const void *)c->buf; mnl_nlmsg_ok(m, rest); m = mnl_nlmsg_next(m, &rest)) {
			if (m->nlmsg_seq != c->seq)
				continue;
			if (m->nlmsg_type == NLMSG_ERROR) {
				int err = error_of(m);
				if (err)
					return err;
				continue;
			}
			if (m->nlmsg_type != GENL_ID_CTRL)
				return EPROTO;
			const struct nlattr *tb[CTRL_ATTR_MAX + 1] = { 0 };
			if (mnl_attr_parse(m, sizeof(struct genlmsghdr), ctrl_attr_cb, tb) != MNL_CB_OK || !tb[CTRL_ATTR_FAMILY_ID])
				return EPROTO;
			c->family = mnl_attr_get_u16(tb[CTRL_ATTR_FAMILY_ID]);
			return c->family ? 0 : EPROTO;
		}
	}
}

int vt_open(struct vt_conn **out)
{
	struct vt_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return ENOMEM;
	int err;
	c->nl = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC);
	if (!c->nl) {
		err = errno;
		goto fail;
	}
	int one = 1;
	/* Errors without the echoed request (it may be 32 KiB). */
	setsockopt(mnl_socket_get_fd(c->nl), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	setsockopt(mnl_socket_get_fd(c->nl), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	if (mnl_socket_bind(c->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = errno;
		goto fail;
	}
	c->seq = (uint32_t)now_ms();
	err = resolve_family(c);
	if (err)
		goto fail;
	*out = c;
	return 0;
fail:
	vt_close(c);
	return err;
}

static int response_attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(attr);
	if (type == VHSM_A_STATUS) {
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			return MNL_CB_ERROR;
	} else if (type == VHSM_A_PAYLOAD) {
		if (mnl_attr_get_payload_len(attr) > VHSM_PAYLOAD_MAX)
			return MNL_CB_ERROR;
	} else {
		return MNL_CB_OK; /* e.g. VHSM_A_REQ_ID: not needed, ignored */
	}
	if (tb[type])
		return MNL_CB_ERROR; /* twice: not the ABI */
	tb[type] = attr;
	return MNL_CB_OK;
}

/* One RESPONSE for our seq: 0 with the payload copied, or a positive errno. */
static int take_response(const struct nlmsghdr *m, uint8_t *reply, size_t cap, size_t *reply_len)
{
	if (m->nlmsg_len < NLMSG_HDRLEN + sizeof(struct genlmsghdr))
		return EPROTO;
	const struct genlmsghdr *genl = mnl_nlmsg_get_payload(m);
	if (genl->cmd != VHSM_CMD_RESPONSE)
		return EPROTO;
	const struct nlattr *tb[VHSM_A_MAX + 1] = { 0 };
	if (mnl_attr_parse(m, sizeof(*genl), response_attr_cb, tb) != MNL_CB_OK || !tb[VHSM_A_STATUS])
		return EPROTO;
	uint32_t status = mnl_attr_get_u32(tb[VHSM_A_STATUS]);
	if (status != 0)
		return status < 4096 ? (int)status : EPROTO;
	if (!tb[VHSM_A_PAYLOAD])
		return EPROTO;
	size_t len = mnl_attr_get_payload_len(tb[VHSM_A_PAYLOAD]);
	if (len > cap)
		return EPROTO;
	memcpy(reply, mnl_attr_get_payload(tb[VHSM_A_PAYLOAD]), len);
	*reply_len = len;
	return 0;
}

int vt_exchange(struct vt_conn *c, const uint8_t *request, size_t request_len,
		uint8_t *reply, size_t cap, size_t *reply_len, int timeout_ms)
{
	if (request_len > VHSM_PAYLOAD_MAX)
		return EMSGSIZE;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(c->buf);
	nlh->nlmsg_type = c->family;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = ++c->seq;
	struct genlmsghdr *genl = mnl_nlmsg_put_extra_header(nlh, sizeof(*genl));
	genl->cmd = VHSM_CMD_REQUEST;
	genl->version = VHSM_GENL_VERSION;
	mnl_attr_put(nlh, VHSM_A_PAYLOAD, request_len, request);
	ssize_t sent = mnl_socket_sendto(c->nl, nlh, nlh->nlmsg_len);
	int send_errno = errno;
	explicit_bzero(c->buf, nlh->nlmsg_len); /* the request may hold a password */
	if (sent < 0)
		return send_errno;

	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		ssize_t len = recv_from_kernel(c, deadline);
		if (len < 0)
			return (int)-len;
		int rest = (int)len;
		int result = -1;
		for (const struct nlmsghdr *m = (const void *)c->buf; mnl_nlmsg_ok(m, rest); m = mnl_nlmsg_next(m, &rest)) {
			if (m->nlmsg_seq != c->seq)
				continue; /* a late reply to an exchange we gave up on */
			if (m->nlmsg_type == NLMSG_ERROR) {
				int err = error_of(m);
				if (err) {
					result = err;
					break;
				}
				continue; /* an ACK we did not ask for */
			}
			if (m->nlmsg_type != c->family) {
				result = EPROTO;
				break;
			}
			result = take_response(m, reply, cap, reply_len);
			break;
		}
		explicit_bzero(c->buf, (size_t)len); /* replies hold session ids, plaintexts */
		if (result >= 0)
			return result;
	}
}

int vt_error_keeps_conn(int err)
{
	/* Refused at once by the kernel: nothing is pending on this socket. */
	return err == EACCES || err == ECONNREFUSED || err == EMSGSIZE || err == ENOBUFS || err == EAGAIN;
}

void vt_close(struct vt_conn *c)
{
	if (!c)
		return;
	if (c->nl)
		mnl_socket_close(c->nl);
	free(c);
}
