/*
 * PKCS#11 sessions, object search and attribute reads. Sessions are the
 * module's own: the VHSM login they use belongs to their slot.
 */
#include <stdlib.h>
#include <string.h>

#include "vp.h"
#include "functions.h"

struct vp_session *vp_session_get(CK_SESSION_HANDLE h)
{
	for (size_t i = 0; i < vp->nsessions; i++)
		if (vp->sessions[i]->handle == h)
			return vp->sessions[i];
	return NULL;
}

void vp_op_reset(struct vp_op *op)
{
	/* A server stream left open is dropped with its VHSM session (or after
	 * the server's idle limit); nothing else holds server resources. */
	if (op->buf)
		explicit_bzero(op->buf, op->len);
	free(op->buf);
	if (op->aad)
		explicit_bzero(op->aad, op->aad_len);
	free(op->aad);
	free(op->found);
	memset(op, 0, sizeof(*op));
}

static void session_free(struct vp_session *s)
{
	for (int k = 0; k < VP_OP_COUNT; k++)
		vp_op_reset(&s->op[k]);
	free(s);
}

void vp_sessions_free(void)
{
	for (size_t i = 0; i < vp->nsessions; i++)
		session_free(vp->sessions[i]);
	free(vp->sessions);
	vp->sessions = NULL;
	vp->nsessions = vp->cap = 0;
}

CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession)
{
	(void)pApplication;
	(void)Notify; /* no callbacks: nothing here is asynchronous */
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!phSession)
		return CKR_ARGUMENTS_BAD;
	if (!(flags & CKF_SERIAL_SESSION))
		return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
	if (slotID >= (CK_SLOT_ID)vp->config.nslots)
		return CKR_SLOT_ID_INVALID;
	if (!vp_slot_present(slotID))
		return CKR_TOKEN_NOT_PRESENT;
	struct vp_session *s = calloc(1, sizeof(*s));
	if (!s)
		return CKR_HOST_MEMORY;
	s->slot = slotID;
	s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
	pthread_mutex_lock(&vp->lock);
	if (vp->nsessions == vp->cap) {
		size_t cap = vp->cap ? vp->cap * 2 : 16;
		struct vp_session **grown = realloc(vp->sessions, cap * sizeof(*grown));
		if (!grown) {
			pthread_mutex_unlock(&vp->lock);
			free(s);
			return CKR_HOST_MEMORY;
		}
		vp->sessions = grown;
		vp->cap = cap;
	}
	s->handle = vp->next_session++;
	vp->sessions[vp->nsessions++] = s;
	*phSession = s->handle;
	pthread_mutex_unlock(&vp->lock);
	return CKR_OK;
}

/* Removes sessions (all of a slot when handle is CK_INVALID_HANDLE) and
 * logs the slot out when its last session goes, as PKCS#11 says. */
static CK_RV close_sessions(CK_SLOT_ID slot_id, CK_SESSION_HANDLE handle)
{
	bool found = false, last = true;
	pthread_mutex_lock(&vp->lock);
	size_t kept = 0;
	for (size_t i = 0; i < vp->nsessions; i++) {
		struct vp_session *s = vp->sessions[i];
		bool match = handle == CK_INVALID_HANDLE ? s->slot == slot_id : s->handle == handle;
		if (match) {
			found = true;
			slot_id = s->slot;
			session_free(s);
		} else {
			vp->sessions[kept++] = s;
		}
	}
	vp->nsessions = kept;
	for (size_t i = 0; i < vp->nsessions; i++)
		if (vp->sessions[i]->slot == slot_id)
			last = false;
	pthread_mutex_unlock(&vp->lock);
	if (handle != CK_INVALID_HANDLE && !found)
		return CKR_SESSION_HANDLE_INVALID;
	if (last && (found || handle == CK_INVALID_HANDLE))
		vp_slot_logout(slot_id);
	return CKR_OK;
}

CK_RV C_CloseSession(CK_SESSION_HANDLE hSession)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (hSession == CK_INVALID_HANDLE)
		return CKR_SESSION_HANDLE_INVALID; /* not "every session" */
	return close_sessions(0, hSession);
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slotID)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (slotID >= (CK_SLOT_ID)vp->config.nslots)
		return CKR_SLOT_ID_INVALID;
	return close_sessions(slotID, CK_INVALID_HANDLE);
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(hSession);
	if (!s) {
		pthread_mutex_unlock(&vp->lock);
		return CKR_SESSION_HANDLE_INVALID;
	}
	bool rw = (s->flags & CKF_RW_SESSION) != 0, user = vp->slots[s->slot].logged_in;
	pInfo->slotID = s->slot;
	pInfo->flags = s->flags;
	pInfo->ulDeviceError = 0;
	pInfo->state = user ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS)
			    : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
	pthread_mutex_unlock(&vp->lock);
	return CKR_OK;
}

/* ---- objects --------------------------------------------------------------- */

/* The object behind a handle in a session's slot (vp->lock held). */
static CK_RV session_object(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, struct vp_session **s, struct vp_object **o)
{
	*s = vp_session_get(hSession);
	if (!*s)
		return CKR_SESSION_HANDLE_INVALID;
	*o = vp_object_get(&vp->slots[(*s)->slot], hObject);
	return *o ? CKR_OK : CKR_OBJECT_HANDLE_INVALID;
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pTemplate && ulCount)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s;
	struct vp_object *o;
	rv = session_object(hSession, hObject, &s, &o);
	if (rv == CKR_OK)
		rv = vp_object_get_attributes(o, pTemplate, ulCount);
	pthread_mutex_unlock(&vp->lock);
	return rv;
}

CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pulSize)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s;
	struct vp_object *o;
	rv = session_object(hSession, hObject, &s, &o);
	if (rv == CKR_OK)
		*pulSize = CK_UNAVAILABLE_INFORMATION; /* it lives in the server */
	pthread_mutex_unlock(&vp->lock);
	return rv;
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pTemplate && ulCount)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(hSession);
	CK_SLOT_ID slot_id = s ? s->slot : 0;
	bool busy = s && s->op[VP_OP_FIND].active;
	pthread_mutex_unlock(&vp->lock);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	if (busy)
		return CKR_OPERATION_ACTIVE;

	/* The server is the truth: keys made or deleted elsewhere show up here. */
	rv = vp_slot_refresh(slot_id);
	if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN)
		return rv == CKR_DEVICE_REMOVED ? CKR_DEVICE_REMOVED : rv;

	pthread_mutex_lock(&vp->lock);
	s = vp_session_get(hSession);
	if (!s) {
		pthread_mutex_unlock(&vp->lock);
		return CKR_SESSION_HANDLE_INVALID;
	}
	struct vp_slot *slot = &vp->slots[s->slot];
	struct vp_op *op = &s->op[VP_OP_FIND];
	vp_op_reset(op);
	op->found = calloc(slot->nobjects ? slot->nobjects : 1, sizeof(CK_OBJECT_HANDLE));
	if (!op->found) {
		pthread_mutex_unlock(&vp->lock);
		return CKR_HOST_MEMORY;
	}
	for (size_t i = 0; i < slot->nobjects; i++)
		if (vp_object_matches(slot->objects[i], pTemplate, ulCount))
			op->found[op->nfound++] = slot->objects[i]->handle;
	op->active = true;
	pthread_mutex_unlock(&vp->lock);
	return CKR_OK;
}

CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!phObject || !pulObjectCount)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(hSession);
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!s->op[VP_OP_FIND].active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else {
		struct vp_op *op = &s->op[VP_OP_FIND];
		CK_ULONG n = 0;
		while (n < ulMaxObjectCount && op->pos < op->nfound)
			phObject[n++] = op->found[op->pos++];
		*pulObjectCount = n;
	}
	pthread_mutex_unlock(&vp->lock);
	return rv;
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(hSession);
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!s->op[VP_OP_FIND].active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else
		vp_op_reset(&s->op[VP_OP_FIND]);
	pthread_mutex_unlock(&vp->lock);
	return rv;
}
