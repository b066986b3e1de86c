/*
 * Request/response over pooled transport connections.
 *
 * Concurrency: a connection carries one exchange at a time. A call takes an
 * idle connection from the pool (or opens one), does its exchange and gives
 * it back, so N threads in flight use N sockets and each waits in poll(2)
 * for its own reply with a deadline: no reader thread, no busy loop, no
 * shared reply queue to match against. At most VP_POOL_IDLE connections
 * are kept.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "vhsm.h"
#include "rpc.h"
#include "transport.h"

#define VP_POOL_IDLE 8

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vt_conn *pool_idle[VP_POOL_IDLE];
static int pool_count;
static _Atomic uint64_t next_request_id = 1;

static int conn_take(struct vt_conn **out)
{
	pthread_mutex_lock(&pool_lock);
	if (pool_count > 0) {
		*out = pool_idle[--pool_count];
		pthread_mutex_unlock(&pool_lock);
		return 0;
	}
	pthread_mutex_unlock(&pool_lock);
	return vt_open(out);
}

static void conn_give(struct vt_conn *conn)
{
	pthread_mutex_lock(&pool_lock);
	if (pool_count < VP_POOL_IDLE) {
		pool_idle[pool_count++] = conn;
		conn = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	vt_close(conn);
}

void vp_rpc_pool_drain(void)
{
	pthread_mutex_lock(&pool_lock);
	while (pool_count > 0)
		vt_close(pool_idle[--pool_count]);
	pthread_mutex_unlock(&pool_lock);
}

void vp_rpc_pool_abandon(void)
{
	/* The lock may have been held by a parent thread at fork time. */
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	memcpy(&pool_lock, &fresh, sizeof(fresh));
	pool_count = 0;
}

int vp_errno_is_absent(int err)
{
	return err == ENOENT || err == ECONNREFUSED || err == EACCES || err == EPROTONOSUPPORT;
}

CK_RV vp_errno_to_ckr(int err)
{
	if (vp_errno_is_absent(err))
		return CKR_DEVICE_REMOVED;
	switch (err) {
	case ENOMEM:
		return CKR_HOST_MEMORY;
	case EMSGSIZE:
		return CKR_DATA_LEN_RANGE;
	case EAGAIN:
	case ENOBUFS:
		return CKR_FUNCTION_FAILED; /* server or container queue full: retry later */
	default:
		return CKR_DEVICE_ERROR; /* ETIMEDOUT, ECONNRESET, EPROTO, ... */
	}
}

CK_RV vp_error_to_ckr(int code, int op)
{
	switch (code) {
	case VHSM__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT:
		switch (op) {
		case VHSM__V1__REQUEST__OP_SIGN:
		case VHSM__V1__REQUEST__OP_MAC:
		case VHSM__V1__REQUEST__OP_ENCRYPT:
		case VHSM__V1__REQUEST__OP_DIGEST:
		case VHSM__V1__REQUEST__OP_STREAM_UPDATE:
			return CKR_DATA_LEN_RANGE;
		case VHSM__V1__REQUEST__OP_VERIFY:
		case VHSM__V1__REQUEST__OP_VERIFY_MAC:
			return CKR_SIGNATURE_LEN_RANGE;
		case VHSM__V1__REQUEST__OP_DECRYPT:
			return CKR_ENCRYPTED_DATA_LEN_RANGE;
		case VHSM__V1__REQUEST__OP_GENERATE_KEY:
			return CKR_TEMPLATE_INCONSISTENT;
		case VHSM__V1__REQUEST__OP_AGREE_KEY:
			return CKR_MECHANISM_PARAM_INVALID;
		case VHSM__V1__REQUEST__OP_CHANGE_PASSWORD:
			return CKR_PIN_LEN_RANGE;
		case VHSM__V1__REQUEST__OP_LOGIN:
			return CKR_PIN_INCORRECT; /* a PIN the server's rules refuse cannot be right */
		case VHSM__V1__REQUEST__OP_CREATE_CERTIFICATE:
			return CKR_ATTRIBUTE_VALUE_INVALID;
		default:
			return CKR_ARGUMENTS_BAD;
		}
	case VHSM__V1__ERROR_CODE__ERROR_CODE_NOT_AUTHENTICATED:
	case VHSM__V1__ERROR_CODE__ERROR_CODE_SESSION_INVALID:
		return CKR_USER_NOT_LOGGED_IN;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_BAD_CREDENTIALS:
		return CKR_PIN_INCORRECT;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_CONTAINER_NOT_ALLOWED:
		return CKR_FUNCTION_REJECTED;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_LOGIN_THROTTLED:
		return CKR_FUNCTION_FAILED;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_LOCKED_OUT:
		return CKR_PIN_LOCKED;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_KEY_NOT_FOUND:
		return CKR_KEY_HANDLE_INVALID;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_KEY_EXISTS:
		return CKR_ATTRIBUTE_VALUE_INVALID;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_USAGE_NOT_ALLOWED:
		if (op == VHSM__V1__REQUEST__OP_GENERATE_KEY)
			return CKR_TEMPLATE_INCONSISTENT; /* usages the type cannot have */
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_WRONG_KEY_TYPE:
		return CKR_KEY_TYPE_INCONSISTENT;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_NOT_EXTRACTABLE:
		return CKR_KEY_UNEXTRACTABLE;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_UNSUPPORTED_ALGORITHM:
		return CKR_MECHANISM_INVALID;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED:
		return CKR_DEVICE_MEMORY;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_BUSY:
		return CKR_FUNCTION_FAILED;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN:
		return CKR_DEVICE_REMOVED;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_DECRYPT_FAILED:
		return CKR_ENCRYPTED_DATA_INVALID;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_STREAM_NOT_FOUND:
		return CKR_FUNCTION_FAILED;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_OBJECT_NOT_FOUND:
		return CKR_OBJECT_HANDLE_INVALID;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_NOT_ALLOWED:
		return CKR_TOKEN_NOT_PRESENT;
	case VHSM__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST:
		return CKR_FUNCTION_FAILED;
	default: /* UNSUPPORTED_VERSION, INTERNAL, KEY_CORRUPTED, unknown */
		return CKR_DEVICE_ERROR;
	}
}

CK_RV vp_rpc_decode(const uint8_t *buf, size_t len, uint64_t id, int op_case,
		    Vhsm__V1__Response **out, int *vhsm_error)
{
	*out = NULL;
	*vhsm_error = 0;
	if (len > VHSM_PAYLOAD_MAX)
		return CKR_DEVICE_ERROR;
	Vhsm__V1__Response *resp = vhsm__v1__response__unpack(NULL, len, buf);
	if (!resp)
		return CKR_DEVICE_ERROR;
	if (resp->version != 1 || resp->id != id)
		goto bad;
	if (resp->result_case == VHSM__V1__RESPONSE__RESULT_ERROR) {
		if (!resp->error)
			goto bad;
		int code = resp->error->code;
		vp_rpc_free(resp);
		*vhsm_error = code ? code : -1;
		return vp_error_to_ckr(code, op_case);
	}
	/* The answer to op N is result member N (proto/vhsm.proto). */
	if ((int)resp->result_case != op_case || !resp->generate_key /* any member of the union */)
		goto bad;
	*out = resp;
	return CKR_OK;
bad:
	vp_rpc_free(resp);
	return CKR_DEVICE_ERROR;
}

static void wipe(ProtobufCBinaryData *b)
{
	if (b->data)
		explicit_bzero(b->data, b->len);
}

void vp_rpc_free(Vhsm__V1__Response *resp)
{
	if (!resp)
		return;
	switch (resp->result_case) {
	case VHSM__V1__RESPONSE__RESULT_LOGIN:
		if (resp->login)
			wipe(&resp->login->session);
		break;
	case VHSM__V1__RESPONSE__RESULT_RANDOM:
		if (resp->random)
			wipe(&resp->random->data);
		break;
	case VHSM__V1__RESPONSE__RESULT_DECRYPT:
		if (resp->decrypt)
			wipe(&resp->decrypt->plaintext);
		break;
	case VHSM__V1__RESPONSE__RESULT_AGREE_KEY:
		if (resp->agree_key)
			wipe(&resp->agree_key->key_material);
		break;
	default:
		break;
	}
	vhsm__v1__response__free_unpacked(resp, NULL);
}

CK_RV vp_rpc(Vhsm__V1__Request *req, const uint8_t *session,
	     Vhsm__V1__Response **resp, int *vhsm_error)
{
	*resp = NULL;
	*vhsm_error = 0;
	req->version = 1;
	req->id = atomic_fetch_add(&next_request_id, 1) & ((1ULL << 53) - 1);
	if (session) {
		req->session.data = (uint8_t *)session;
		req->session.len = VP_SESSION_ID_LEN;
	}
	size_t len = vhsm__v1__request__get_packed_size(req);
	if (len > VHSM_PAYLOAD_MAX)
		return CKR_DATA_LEN_RANGE;
	uint8_t *out = malloc(len ? len : 1);
	uint8_t *in = malloc(VHSM_PAYLOAD_MAX);
	CK_RV rv = CKR_HOST_MEMORY;
	if (!out || !in)
		goto done;
	vhsm__v1__request__pack(req, out);

	struct vt_conn *conn;
	int err = conn_take(&conn);
	size_t in_len = 0;
	if (!err) {
		err = vt_exchange(conn, out, len, in, VHSM_PAYLOAD_MAX, &in_len, VP_RPC_TIMEOUT_MS);
		if (!err || vt_error_keeps_conn(err))
			conn_give(conn);
		else
			vt_close(conn);
	}
	if (err) {
		rv = vp_errno_to_ckr(err);
		goto done;
	}
	rv = vp_rpc_decode(in, in_len, req->id, (int)req->op_case, resp, vhsm_error);
	explicit_bzero(in, in_len);
done:
	if (out)
		explicit_bzero(out, len);
	free(out);
	free(in);
	req->session.data = NULL;
	req->session.len = 0;
	return rv;
}
