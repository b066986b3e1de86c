/*
 * The protobuf call layer: one Request out, one checked Response back.
 * Everything about the reply is verified here (size, decode, version, id,
 * that the result is the one answering the op) so callers only look at the
 * fields of the expected result.
 */
#ifndef VP_RPC_H
#define VP_RPC_H

#include <stdint.h>
#include "pkcs11_v3.h"
#include "vhsm.pb-c.h"

#define VP_SESSION_ID_LEN 16
#define VP_RPC_TIMEOUT_MS 30000

/*
 * Sends req (op set by the caller; version, id and session filled here) and
 * returns CKR_OK with *resp holding the expected result member, or the
 * CKR_* for the failure. *vhsm_error gets the server's ErrorCode, or 0 when
 * the failure was not the server's answer (transport, malformed reply).
 * Free *resp with vp_rpc_free.
 */
CK_RV vp_rpc(Vhsm__V1__Request *req, const uint8_t *session,
	     Vhsm__V1__Response **resp, int *vhsm_error);

/* Decodes and checks a reply to a request with this id and op. Exposed for
 * the fuzzer and the unit tests. */
CK_RV vp_rpc_decode(const uint8_t *buf, size_t len, uint64_t id, int op_case,
		    Vhsm__V1__Response **resp, int *vhsm_error);

/* Zeroes every secret a reply may carry, then frees it. */
void vp_rpc_free(Vhsm__V1__Response *resp);

/* The CKR_* for a server ErrorCode answering op_case (docs/pkcs11.md). */
CK_RV vp_error_to_ckr(int code, int op_case);

/* The CKR_* for a transport errno (docs/pkcs11.md). */
CK_RV vp_errno_to_ckr(int err);

/* True when the error means "no VHSM here" (module, server or binding). */
int vp_errno_is_absent(int err);

/* Closes every pooled connection (C_Finalize). */
void vp_rpc_pool_drain(void);
/* After fork: forget the parent's connections without touching them. */
void vp_rpc_pool_abandon(void);

#endif
