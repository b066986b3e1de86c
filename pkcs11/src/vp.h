/*
 * The module's state: slots (one per configured VHSM user), their objects
 * and login, and the PKCS#11 sessions.
 *
 * Locking: vp_state.lock guards every field below and is never held across
 * a request to the server; a call copies what it needs, unlocks, makes its
 * request, and re-locks to apply the answer (re-finding its session by
 * handle: it may have been closed meanwhile). slot.login_lock serialises a
 * slot's login and logout requests; it is taken before vp_state.lock, never
 * after.
 */
#ifndef VP_VP_H
#define VP_VP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pkcs11_v3.h"
#include "config.h"
#include "object.h"
#include "rpc.h"

#define VP_DATA_MAX 30000 /* data bytes per request: the payload limit less room for the rest */

struct vp_slot {
	struct vp_slot_config cfg;
	pthread_mutex_t login_lock;
	bool logged_in;
	uint8_t vsession[VP_SESSION_ID_LEN];
	uint64_t login_epoch;        /* bumps at every login and logout */
	struct vp_object **objects;
	size_t nobjects, cap;
	int64_t probed_ms;           /* when presence was last asked */
	bool present;
};

enum vp_op_kind { VP_OP_FIND, VP_OP_SIGN, VP_OP_VERIFY, VP_OP_DIGEST, VP_OP_ENCRYPT, VP_OP_DECRYPT,
		  VP_OP_MSG_ENCRYPT, VP_OP_MSG_DECRYPT, VP_OP_COUNT };

struct vp_mech;

struct vp_op {
	bool active;
	const struct vp_mech *mech;
	char key_id[VP_KEY_ID_MAX + 1];
	size_t out_len;              /* output length known at init (0: from the data) */
	int hash_len;                /* for PSS/prehashed: the digest length expected */
	uint8_t *buf;                /* multi-part input kept until final */
	size_t len;
	bool stream;                 /* the input went to a server stream instead */
	uint32_t stream_id;
	uint64_t stream_epoch;       /* the login the stream belongs to */
	CK_BYTE_PTR iv_out;          /* AES-GCM encrypt: where the server's nonce goes */
	uint8_t iv[12];              /* AES-GCM decrypt: the nonce */
	uint8_t *aad;
	size_t aad_len;
	CK_OBJECT_HANDLE *found;     /* find */
	size_t nfound, pos;
};

struct vp_session {
	CK_SESSION_HANDLE handle;
	CK_SLOT_ID slot;
	CK_FLAGS flags;
	struct vp_op op[VP_OP_COUNT];
};

struct vp_state {
	pthread_mutex_t lock;
	struct vp_config config;
	struct vp_slot slots[VP_MAX_SLOTS];
	struct vp_session **sessions;
	size_t nsessions, cap;
	CK_SESSION_HANDLE next_session;
	CK_OBJECT_HANDLE next_object;
};

extern struct vp_state *vp;

/* Every entry point: CKR_CRYPTOKI_NOT_INITIALIZED before C_Initialize and in
 * a child after fork() until it calls C_Initialize itself. */
CK_RV vp_check(void);

/* With vp->lock held: */
struct vp_session *vp_session_get(CK_SESSION_HANDLE h);
struct vp_slot *vp_slot_get(CK_SLOT_ID id);
struct vp_object *vp_object_get(struct vp_slot *slot, CK_OBJECT_HANDLE h);
void vp_op_reset(struct vp_op *op);

/* Copies the slot's VHSM session id under the lock; CKR_USER_NOT_LOGGED_IN if none. */
CK_RV vp_session_id(struct vp_slot *slot, uint8_t out[VP_SESSION_ID_LEN], uint64_t *epoch);

/* The server said the session is gone: the slot is logged out (if epoch still current). */
void vp_slot_lost_login(struct vp_slot *slot, uint64_t epoch);

/* Asks the server for the slot's objects and replaces the cached ones.
 * Called without vp->lock. */
CK_RV vp_slot_refresh(CK_SLOT_ID id);

/* True if the token answers (cached for a second). Called without vp->lock. */
bool vp_slot_present(CK_SLOT_ID id);

/* Adds or replaces objects of a slot (vp->lock held); returns the handle. */
CK_OBJECT_HANDLE vp_slot_put_object(struct vp_slot *slot, struct vp_object *o);

/* Forgets the slot's objects of this key id or cert id (vp->lock held). */
void vp_slot_drop_objects(struct vp_slot *slot, const char *key_id, bool certificate);

/* Logs the slot out of VHSM (called without vp->lock). */
void vp_slot_logout(CK_SLOT_ID id);

void vp_slots_free(void);
void vp_sessions_free(void);

int64_t vp_now_ms(void);

/* A PKCS#11 blank-padded text field. */
void vp_pad(CK_UTF8CHAR *dst, size_t size, const char *src);

/* The C_GetSlotList / C_GetMechanismList convention: NULL out asks the
 * count, a short one gets CKR_BUFFER_TOO_SMALL. */
CK_RV vp_return_list(const CK_ULONG *items, CK_ULONG n, CK_ULONG *out, CK_ULONG_PTR count);

#endif
