/*
 * How request bytes reach the VHSM server and replies come back: one
 * connection carries one exchange at a time (the call layer pools them).
 * The shipped module has exactly one implementation, netlink.c (the
 * vhsm_transport.ko generic netlink family); a test build may link another.
 */
#ifndef VP_TRANSPORT_H
#define VP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

struct vt_conn;

/* Opens a connection. 0, or a positive errno: ENOENT when the kernel
 * module is not loaded, others from socket(2)/bind(2). */
int vt_open(struct vt_conn **out);

/*
 * Sends one request and waits at most timeout_ms for its reply, which is
 * copied into reply[0..cap) (cap >= VHSM_PAYLOAD_MAX). Returns 0, or a
 * positive errno: the kernel's refusal (EACCES, ECONNREFUSED, EMSGSIZE,
 * ENOBUFS, EAGAIN), its late failure (ETIMEDOUT, ECONNRESET), ETIMEDOUT when
 * nothing came in time, EPROTO for a reply that breaks the ABI. After any
 * error other than a kernel refusal the connection must be closed.
 */
int vt_exchange(struct vt_conn *conn, const uint8_t *request, size_t request_len,
		uint8_t *reply, size_t cap, size_t *reply_len, int timeout_ms);

/* True for errors after which the connection is still usable. */
int vt_error_keeps_conn(int err);

void vt_close(struct vt_conn *conn);

#endif
