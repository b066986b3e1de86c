/*
 * TEST BUILD ONLY (libvhsm-pkcs11-test.so): a transport to a Unix stream
 * socket named by VHSM_PKCS11_TEST_SOCKET, where test/host/helpers/
 * p11-harness runs the real server code over the in-memory transport with a
 * fixed stamp. Never linked into the shipped module: a redirectable
 * transport in a library that PAM and setuid programs load would let the
 * caller pick its own "server".
 *
 * Frames: request = u32 length (little endian) + payload;
 * reply = u32 status (0 or a positive errno) + u32 length + payload.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "vhsm.h"
#include "transport.h"

struct vt_conn {
	int fd;
};

int vt_open(struct vt_conn **out)
{
	const char *path = getenv("VHSM_PKCS11_TEST_SOCKET");
	if (!path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return ENOENT;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno == ENOENT ? ECONNREFUSED : errno;
		close(fd);
		return err;
	}
	struct vt_conn *c = malloc(sizeof(*c));
	if (!c) {
		close(fd);
		return ENOMEM;
	}
	c->fd = fd;
	*out = c;
	return 0;
}

static int io_all(int fd, void *buf, size_t len, int writing, int timeout_ms)
{
	uint8_t *p = buf;
	while (len) {
		struct pollfd pfd = { .fd = fd, .events = writing ? POLLOUT : POLLIN };
		int n = poll(&pfd, 1, timeout_ms);
		if (n == 0)
			return ETIMEDOUT;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		ssize_t done = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
		if (done == 0)
			return ECONNRESET;
		if (done < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno;
		}
		p += done;
		len -= (size_t)done;
	}
	return 0;
}

int vt_exchange(struct vt_conn *c, const uint8_t *request, size_t request_len,
		uint8_t *reply, size_t cap, size_t *reply_len, int timeout_ms)
{
	if (request_len > VHSM_PAYLOAD_MAX)
		return EMSGSIZE;
	uint8_t head[8];
	uint32_t n = (uint32_t)request_len;
	for (int i = 0; i < 4; i++)
		head[i] = (uint8_t)(n >> (8 * i));
	int err = io_all(c->fd, head, 4, 1, timeout_ms);
	if (!err)
		err = io_all(c->fd, (void *)request, request_len, 1, timeout_ms);
	if (!err)
		err = io_all(c->fd, head, 8, 0, timeout_ms);
	if (err)
		return err;
	uint32_t status = 0, len = 0;
	for (int i = 3; i >= 0; i--) {
		status = status << 8 | head[i];
		len = len << 8 | head[4 + i];
	}
	if (status)
		return status < 4096 ? (int)status : EPROTO;
	if (len > cap || len > VHSM_PAYLOAD_MAX)
		return EPROTO;
	err = io_all(c->fd, reply, len, 0, timeout_ms);
	if (err)
		return err;
	*reply_len = len;
	return 0;
}

int vt_error_keeps_conn(int err)
{
	return err == EACCES || err == ECONNREFUSED || err == EMSGSIZE || err == ENOBUFS || err == EAGAIN;
}

void vt_close(struct vt_conn *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}
