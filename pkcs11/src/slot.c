/*
 * Slots and tokens: one slot per configured VHSM user, the token label is
 * the user name, the PIN is the password. One VHSM login per (process,
 * slot), shared by every PKCS#11 session of that slot. The token is present
 * while the server answers for that user from here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vp.h"
#include "functions.h"

#define PRESENCE_CACHE_MS 1000
#define VP_PIN_MAX 1024

struct vp_slot *vp_slot_get(CK_SLOT_ID id)
{
	if (id >= (CK_SLOT_ID)vp->config.nslots)
		return NULL;
	return &vp->slots[id];
}

struct vp_object *vp_object_get(struct vp_slot *slot, CK_OBJECT_HANDLE h)
{
	for (size_t i = 0; i < slot->nobjects; i++)
		if (slot->objects[i]->handle == h)
			return slot->objects[i];
	return NULL;
}

CK_RV vp_session_id(struct vp_slot *slot, uint8_t out[VP_SESSION_ID_LEN], uint64_t *epoch)
{
	if (!slot->logged_in)
		return CKR_USER_NOT_LOGGED_IN;
	memcpy(out, slot->vsession, VP_SESSION_ID_LEN);
	if (epoch)
		*epoch = slot->login_epoch;
	return CKR_OK;
}

static void drop_private_objects(struct vp_slot *slot)
{
	size_t kept = 0;
	for (size_t i = 0; i < slot->nobjects; i++) {
		struct vp_object *o = slot->objects[i];
		if (o->cls == CKO_PRIVATE_KEY || o->cls == CKO_SECRET_KEY) {
			vp_object_clear(o);
			free(o);
		} else {
			slot->objects[kept++] = o;
		}
	}
	slot->nobjects = kept;
}

static void forget_login(struct vp_slot *slot)
{
	explicit_bzero(slot->vsession, sizeof(slot->vsession));
	slot->logged_in = false;
	slot->login_epoch++;
	drop_private_objects(slot);
}

void vp_slot_lost_login(struct vp_slot *slot, uint64_t epoch)
{
	if (slot->logged_in && slot->login_epoch == epoch)
		forget_login(slot);
}

CK_OBJECT_HANDLE vp_slot_put_object(struct vp_slot *slot, struct vp_object *o)
{
	for (size_t i = 0; i < slot->nobjects; i++) {
		struct vp_object *old = slot->objects[i];
		if (old->cls == o->cls && strcmp(old->key_id, o->key_id) == 0) {
			o->handle = old->handle;
			vp_object_clear(old);
			free(old);
			slot->objects[i] = o;
			return o->handle;
		}
	}
	if (slot->nobjects == slot->cap) {
		size_t cap = slot->cap ? slot->cap * 2 : 16;
		struct vp_object **grown = realloc(slot->objects, cap * sizeof(*grown));
		if (!grown) {
			vp_object_clear(o);
			free(o);
			return CK_INVALID_HANDLE;
		}
		slot->objects = grown;
		slot->cap = cap;
	}
	o->handle = vp->next_object++;
	slot->objects[slot->nobjects++] = o;
	return o->handle;
}

void vp_slot_drop_objects(struct vp_slot *slot, const char *key_id, bool certificate)
{
	size_t kept = 0;
	for (size_t i = 0; i < slot->nobjects; i++) {
		struct vp_object *o = slot->objects[i];
		if ((o->cls == CKO_CERTIFICATE) == certificate && strcmp(o->key_id, key_id) == 0) {
			vp_object_clear(o);
			free(o);
		} else {
			slot->objects[kept++] = o;
		}
	}
	slot->nobjects = kept;
}

void vp_slots_free(void)
{
	for (int i = 0; i < VP_MAX_SLOTS; i++) {
		struct vp_slot *slot = &vp->slots[i];
		for (size_t j = 0; j < slot->nobjects; j++) {
			vp_object_clear(slot->objects[j]);
			free(slot->objects[j]);
		}
		free(slot->objects);
		slot->objects = NULL;
		slot->nobjects = slot->cap = 0;
		explicit_bzero(slot->vsession, sizeof(slot->vsession));
	}
}

/* ---- presence and listing ---------------------------------------------- */

/* A list_public_objects page for the user; NOT_ALLOWED is an empty answer. */
static CK_RV list_public(const char *user, const char *after, Vhsm__V1__Response **resp, int *code)
{
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__ListPublicObjectsRequest op = VHSM__V1__LIST_PUBLIC_OBJECTS_REQUEST__INIT;
	op.username = (char *)user;
	op.after_key_id = (char *)after;
	op.limit = 100;
	req.op_case = VHSM__V1__REQUEST__OP_LIST_PUBLIC_OBJECTS;
	req.list_public_objects = &op;
	return vp_rpc(&req, NULL, resp, code);
}

bool vp_slot_present(CK_SLOT_ID id)
{
	char user[VP_USER_MAX + 1];
	pthread_mutex_lock(&vp->lock);
	struct vp_slot *slot = vp_slot_get(id);
	if (!slot) {
		pthread_mutex_unlock(&vp->lock);
		return false;
	}
	int64_t now = vp_now_ms();
	if (slot->probed_ms && now - slot->probed_ms < PRESENCE_CACHE_MS) {
		bool present = slot->present;
		pthread_mutex_unlock(&vp->lock);
		return present;
	}
	strcpy(user, slot->cfg.user);
	pthread_mutex_unlock(&vp->lock);

	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__ListPublicObjectsRequest op = VHSM__V1__LIST_PUBLIC_OBJECTS_REQUEST__INIT;
	op.username = user;
	op.limit = 1;
	req.op_case = VHSM__V1__REQUEST__OP_LIST_PUBLIC_OBJECTS;
	req.list_public_objects = &op;
	Vhsm__V1__Response *resp;
	int code;
	CK_RV rv = vp_rpc(&req, NULL, &resp, &code);
	vp_rpc_free(resp);
	/* Present when the server answered at all: any reply, even an error. */
	bool present = rv == CKR_OK || code != 0;

	pthread_mutex_lock(&vp->lock);
	slot->present = present;
	slot->probed_ms = vp_now_ms();
	if (!present && slot->logged_in)
		forget_login(slot); /* a restarted server has no sessions */
	pthread_mutex_unlock(&vp->lock);
	return present;
}

struct listing {
	struct vp_object **items;
	size_t n, cap;
};

static int listing_add(struct listing *l, struct vp_object *o)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct vp_object **grown = realloc(l->items, cap * sizeof(*grown));
		if (!grown)
			return -1;
		l->items = grown;
		l->cap = cap;
	}
	l->items[l->n++] = o;
	return 0;
}

/* Adds o (NULL: nothing) to the listing, or frees it when that fails. */
static void listing_take(struct listing *l, struct vp_object *o)
{
	if (o && listing_add(l, o)) {
		vp_object_clear(o);
		free(o);
	}
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++) {
		vp_object_clear(l->items[i]);
		free(l->items[i]);
	}
	free(l->items);
}

static uint32_t usage_bits(const Vhsm__V1__KeyInfo *k)
{
	uint32_t bits = 0;
	for (size_t i = 0; i < k->n_usages; i++)
		if (k->usages[i] > 0 && k->usages[i] < 32)
			bits |= VP_USE(k->usages[i]);
	return bits;
}

/* Builds an object from a server KeyInfo; NULL if the reply is unusable. */
static struct vp_object *key_object(CK_OBJECT_CLASS cls, const Vhsm__V1__KeyInfo *k, const uint8_t *spki, size_t spki_len)
{
	struct vp_object *o = malloc(sizeof(*o));
	if (!o)
		return NULL;
	if (vp_object_init_key(o, cls, k->type, k->key_id, k->label, usage_bits(k), k->extractable,
			       k->length_bytes, spki, spki_len)) {
		free(o);
		return NULL;
	}
	return o;
}

static const struct vp_object *find_listed(const struct listing *l, CK_OBJECT_CLASS cls, const char *key_id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i]->cls == cls && strcmp(l->items[i]->key_id, key_id) == 0)
			return l->items[i];
	return NULL;
}

/* Moves the page cursor; false on the last page. A cursor that does not
 * advance ends the listing (a reply cannot make us loop). */
static bool next_page(const char *next, char after[VP_KEY_ID_MAX + 1])
{
	size_t len = strlen(next);
	if (len == 0 || len > VP_KEY_ID_MAX || strcmp(next, after) <= 0)
		return false;
	strcpy(after, next);
	return true;
}

/* Public keys and certificates, before login too. */
static CK_RV fetch_public(const char *user, struct listing *out)
{
	char after[VP_KEY_ID_MAX + 1] = "";
	for (int page = 0; page < 1000; page++) {
		Vhsm__V1__Response *resp;
		int code;
		CK_RV rv = list_public(user, after, &resp, &code);
		if (rv != CKR_OK)
			return code ? CKR_OK : rv; /* NOT_ALLOWED or an older server: no public objects */
		const Vhsm__V1__PublicObjectList *list = resp->list_public_objects;
		for (size_t i = 0; i < list->n_keys; i++) {
			const Vhsm__V1__PublicKeyObject *pk = list->keys[i];
			if (!pk->key)
				continue;
			listing_take(out, key_object(CKO_PUBLIC_KEY, pk->key, pk->spki_der.data, pk->spki_der.len));
		}
		for (size_t i = 0; page == 0 && i < list->n_certificates; i++) {
			const Vhsm__V1__CertificateInfo *c = list->certificates[i];
			struct vp_object *o = malloc(sizeof(*o));
			if (!o)
				continue;
			if (vp_object_init_certificate(o, c->cert_id, c->id.data, c->id.len, c->label, c->der.data, c->der.len)) {
				free(o);
				continue;
			}
			listing_take(out, o);
		}
		bool more = next_page(list->next_after_key_id, after);
		vp_rpc_free(resp);
		if (!more)
			return CKR_OK;
	}
	return CKR_OK;
}

static CK_RV export_spki(const uint8_t *session, const char *key_id, Vhsm__V1__Response **resp)
{
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__ExportPublicKeyRequest op = VHSM__V1__EXPORT_PUBLIC_KEY_REQUEST__INIT;
	op.key_id = (char *)key_id;
	op.format = VHSM__V1__PUBLIC_KEY_FORMAT__PUBLIC_KEY_FORMAT_SPKI_DER;
	req.op_case = VHSM__V1__REQUEST__OP_EXPORT_PUBLIC_KEY;
	req.export_public_key = &op;
	int code;
	return vp_rpc(&req, session, resp, &code);
}

/* Private and secret keys of the logged-in user; public halves too when the
 * public listing did not have them. */
static CK_RV fetch_private(const uint8_t *session, struct listing *out, int *vhsm_code)
{
	char after[VP_KEY_ID_MAX + 1] = "";
	for (int page = 0; page < 1000; page++) {
		Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
		Vhsm__V1__ListKeysRequest op = VHSM__V1__LIST_KEYS_REQUEST__INIT;
		op.after_key_id = after;
		op.limit = 100;
		req.op_case = VHSM__V1__REQUEST__OP_LIST_KEYS;
		req.list_keys = &op;
		Vhsm__V1__Response *resp;
		CK_RV rv = vp_rpc(&req, session, &resp, vhsm_code);
		if (rv != CKR_OK)
			return rv;
		const Vhsm__V1__KeyList *list = resp->list_keys;
		for (size_t i = 0; i < list->n_keys; i++) {
			const Vhsm__V1__KeyInfo *k = list->keys[i];
			bool asymmetric;
			if (vp_key_type_of(k->type, &asymmetric) == (CK_KEY_TYPE)-1 || !k->key_id)
				continue;
			struct vp_object *o;
			if (!asymmetric) {
				o = key_object(CKO_SECRET_KEY, k, NULL, 0);
			} else {
				const struct vp_object *pub = find_listed(out, CKO_PUBLIC_KEY, k->key_id);
				if (pub) {
					o = key_object(CKO_PRIVATE_KEY, k, pub->der, pub->der_len);
				} else {
					Vhsm__V1__Response *spki;
					if (export_spki(session, k->key_id, &spki) != CKR_OK)
						continue;
					const ProtobufCBinaryData *d = &spki->export_public_key->data;
					o = key_object(CKO_PRIVATE_KEY, k, d->data, d->len);
					struct vp_object *po = key_object(CKO_PUBLIC_KEY, k, d->data, d->len);
					vp_rpc_free(spki);
					listing_take(out, po);
				}
			}
			listing_take(out, o);
		}
		bool more = next_page(list->next_after_key_id, after);
		vp_rpc_free(resp);
		if (!more)
			return CKR_OK;
	}
	return CKR_OK;
}

CK_RV vp_slot_refresh(CK_SLOT_ID id)
{
	char user[VP_USER_MAX + 1];
	uint8_t session[VP_SESSION_ID_LEN];
	uint64_t epoch;
	pthread_mutex_lock(&vp->lock);
	struct vp_slot *slot = vp_slot_get(id);
	if (!slot) {
		pthread_mutex_unlock(&vp->lock);
		return CKR_SLOT_ID_INVALID;
	}
	strcpy(user, slot->cfg.user);
	bool logged_in = vp_session_id(slot, session, &epoch) == CKR_OK;
	epoch = slot->login_epoch;
	pthread_mutex_unlock(&vp->lock);

	struct listing l = { 0 };
	CK_RV rv = fetch_public(user, &l);
	int code = 0;
	if (rv == CKR_OK && logged_in)
		rv = fetch_private(session, &l, &code);
	explicit_bzero(session, sizeof(session));

	pthread_mutex_lock(&vp->lock);
	if (code == VHSM__V1__ERROR_CODE__ERROR_CODE_SESSION_INVALID)
		vp_slot_lost_login(slot, epoch);
	if (rv == CKR_OK && slot->login_epoch == epoch) {
		/* Keep handles of objects that are still there; drop the rest. */
		for (size_t i = 0; i < slot->nobjects; i++)
			slot->objects[i]->seen = false;
		for (size_t i = 0; i < l.n; i++) {
			struct vp_object *o = l.items[i];
			l.items[i] = NULL;
			if (vp_object_hidden(o, &slot->cfg)) {
				vp_object_clear(o);
				free(o);
				continue;
			}
			o->seen = true;
			vp_slot_put_object(slot, o);
		}
		size_t kept = 0;
		for (size_t i = 0; i < slot->nobjects; i++) {
			struct vp_object *o = slot->objects[i];
			if (o->seen) {
				slot->objects[kept++] = o;
			} else {
				vp_object_clear(o);
				free(o);
			}
		}
		slot->nobjects = kept;
		l.n = 0;
	}
	pthread_mutex_unlock(&vp->lock);
	listing_free(&l);
	return rv;
}

/* ---- slot and token information ---------------------------------------- */

CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pulCount)
		return CKR_ARGUMENTS_BAD;
	CK_SLOT_ID ids[VP_MAX_SLOTS];
	CK_ULONG n = 0;
	for (int i = 0; i < vp->config.nslots; i++)
		if (!tokenPresent || vp_slot_present((CK_SLOT_ID)i))
			ids[n++] = (CK_SLOT_ID)i;
	return vp_return_list(ids, n, pSlotList, pulCount);
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	if (slotID >= (CK_SLOT_ID)vp->config.nslots)
		return CKR_SLOT_ID_INVALID;
	char desc[128];
	snprintf(desc, sizeof(desc), "VHSM user %s", vp->slots[slotID].cfg.user);
	memset(pInfo, 0, sizeof(*pInfo));
	vp_pad(pInfo->slotDescription, sizeof(pInfo->slotDescription), desc);
	vp_pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "VHSM");
	pInfo->flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
	if (vp_slot_present(slotID))
		pInfo->flags |= CKF_TOKEN_PRESENT;
	pInfo->hardwareVersion.major = 0;
	pInfo->firmwareVersion.major = 0;
	return CKR_OK;
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	if (slotID >= (CK_SLOT_ID)vp->config.nslots)
		return CKR_SLOT_ID_INVALID;
	if (!vp_slot_present(slotID))
		return CKR_TOKEN_NOT_PRESENT;
	memset(pInfo, 0, sizeof(*pInfo));
	pthread_mutex_lock(&vp->lock);
	struct vp_slot *slot = &vp->slots[slotID];
	char serial[32];
	snprintf(serial, sizeof(serial), "%lu", (unsigned long)slotID);
	vp_pad(pInfo->label, sizeof(pInfo->label), slot->cfg.user);
	vp_pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "VHSM");
	vp_pad(pInfo->model, sizeof(pInfo->model), "vhsm");
	vp_pad(pInfo->serialNumber, sizeof(pInfo->serialNumber), serial);
	pInfo->flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED | CKF_LOGIN_REQUIRED | CKF_RNG;
	CK_ULONG sessions = 0, rw = 0;
	for (size_t i = 0; i < vp->nsessions; i++)
		if (vp->sessions[i]->slot == slotID) {
			sessions++;
			rw += (vp->sessions[i]->flags & CKF_RW_SESSION) != 0;
		}
	pthread_mutex_unlock(&vp->lock);
	pInfo->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
	pInfo->ulSessionCount = sessions;
	pInfo->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
	pInfo->ulRwSessionCount = rw;
	pInfo->ulMaxPinLen = VP_PIN_MAX;
	pInfo->ulMinPinLen = 1;
	pInfo->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	memcpy(pInfo->utcTime, "0000000000000000", 16);
	return CKR_OK;
}

/* ---- login ---------------------------------------------------------------- */

/* A VHSM login: the session id in sid, or the CKR for the refusal. */
static CK_RV vhsm_login(const char *user, const uint8_t *pin, size_t pin_len, uint8_t sid[VP_SESSION_ID_LEN])
{
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__LoginRequest op = VHSM__V1__LOGIN_REQUEST__INIT;
	op.username = (char *)user;
	op.password.data = (uint8_t *)pin;
	op.password.len = pin_len;
	req.op_case = VHSM__V1__REQUEST__OP_LOGIN;
	req.login = &op;
	Vhsm__V1__Response *resp;
	int code;
	CK_RV rv = vp_rpc(&req, NULL, &resp, &code);
	if (rv == CKR_OK) {
		const ProtobufCBinaryData *got = &resp->login->session;
		if (got->len != VP_SESSION_ID_LEN)
			rv = CKR_DEVICE_ERROR;
		else
			memcpy(sid, got->data, VP_SESSION_ID_LEN);
		vp_rpc_free(resp);
	} else if (code == 0 && rv == CKR_DEVICE_REMOVED) {
		rv = CKR_TOKEN_NOT_PRESENT;
	}
	return rv;
}

/* Ends a VHSM session; the answer does not matter, the id is forgotten. */
static void vhsm_logout(uint8_t sid[VP_SESSION_ID_LEN])
{
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__LogoutRequest op = VHSM__V1__LOGOUT_REQUEST__INIT;
	req.op_case = VHSM__V1__REQUEST__OP_LOGOUT;
	req.logout = &op;
	Vhsm__V1__Response *resp;
	int code;
	vp_rpc(&req, sid, &resp, &code);
	vp_rpc_free(resp);
	explicit_bzero(sid, VP_SESSION_ID_LEN);
}

static CK_RV login_as(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
		      const char *username, size_t username_len)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (userType == CKU_SO)
		return CKR_USER_TYPE_INVALID; /* VHSM has no token officer */
	if (userType == CKU_CONTEXT_SPECIFIC)
		return CKR_OPERATION_NOT_INITIALIZED; /* no key needs it */
	if (userType != CKU_USER)
		return CKR_USER_TYPE_INVALID;
	if (!pPin)
		return CKR_ARGUMENTS_BAD; /* no protected authentication path */
	if (ulPinLen == 0 || ulPinLen > VP_PIN_MAX)
		return CKR_PIN_LEN_RANGE;

	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(hSession);
	if (!s) {
		pthread_mutex_unlock(&vp->lock);
		return CKR_SESSION_HANDLE_INVALID;
	}
	CK_SLOT_ID id = s->slot;
	struct vp_slot *slot = &vp->slots[id];
	char user[VP_USER_MAX + 1];
	strcpy(user, slot->cfg.user);
	pthread_mutex_unlock(&vp->lock);
	if (username && (username_len != strlen(user) || memcmp(username, user, username_len) != 0))
		return CKR_USER_TYPE_INVALID; /* this slot is that user's token */

	pthread_mutex_lock(&slot->login_lock);
	pthread_mutex_lock(&vp->lock);
	bool already = slot->logged_in;
	pthread_mutex_unlock(&vp->lock);
	if (already) {
		pthread_mutex_unlock(&slot->login_lock);
		return CKR_USER_ALREADY_LOGGED_IN;
	}
	uint8_t sid[VP_SESSION_ID_LEN];
	rv = vhsm_login(user, pPin, ulPinLen, sid);
	if (rv == CKR_OK) {
		pthread_mutex_lock(&vp->lock);
		memcpy(slot->vsession, sid, VP_SESSION_ID_LEN);
		slot->logged_in = true;
		slot->login_epoch++;
		pthread_mutex_unlock(&vp->lock);
		explicit_bzero(sid, sizeof(sid));
	}
	pthread_mutex_unlock(&slot->login_lock);
	if (rv == CKR_OK)
		vp_slot_refresh(id);
	return rv;
}

CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	return login_as(hSession, userType, pPin, ulPinLen, NULL, 0);
}

CK_RV C_LoginUser(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
		  CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen)
{
	if (!pUsername)
		return CKR_ARGUMENTS_BAD;
	return login_as(hSession, userType, pPin, ulPinLen, (const char *)pUsername, ulUsernameLen);
}

/* Ends the slot's VHSM login, if any (the server's answer does not matter:
 * the id is forgotten either way). */
void vp_slot_logout(CK_SLOT_ID id)
{
	struct vp_slot *slot = &vp->slots[id];
	uint8_t session[VP_SESSION_ID_LEN];
	pthread_mutex_lock(&slot->login_lock);
	pthread_mutex_lock(&vp->lock);
	bool logged_in = vp_session_id(slot, session, NULL) == CKR_OK;
	if (logged_in)
		forget_login(slot);
	pthread_mutex_unlock(&vp->lock);
	if (logged_in)
		vhsm_logout(session);
	pthread_mutex_unlock(&slot->login_lock);
}

CK_RV C_Logout(CK_SESSION_HANDLE hSession)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(hSession);
	CK_SLOT_ID id = s ? s->slot : 0;
	bool logged_in = s && vp->slots[id].logged_in;
	if (s)
		for (int k = 0; k < VP_OP_COUNT; k++)
			for (size_t i = 0; i < vp->nsessions; i++)
				if (vp->sessions[i]->slot == id)
					vp_op_reset(&vp->sessions[i]->op[k]);
	pthread_mutex_unlock(&vp->lock);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	if (!logged_in)
		return CKR_USER_NOT_LOGGED_IN;
	vp_slot_logout(id);
	return CKR_OK;
}

CK_RV C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pOldPin || !pNewPin)
		return CKR_ARGUMENTS_BAD;
	if (ulOldLen == 0 || ulOldLen > VP_PIN_MAX || ulNewLen == 0 || ulNewLen > VP_PIN_MAX)
		return CKR_PIN_LEN_RANGE;
	uint8_t session[VP_SESSION_ID_LEN];
	uint64_t epoch;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(hSession);
	if (!s) {
		pthread_mutex_unlock(&vp->lock);
		return CKR_SESSION_HANDLE_INVALID;
	}
	struct vp_slot *slot = &vp->slots[s->slot];
	bool rw = (s->flags & CKF_RW_SESSION) != 0;
	char user[VP_USER_MAX + 1];
	strcpy(user, slot->cfg.user);
	bool temporary = vp_session_id(slot, session, &epoch) != CKR_OK;
	pthread_mutex_unlock(&vp->lock);
	if (!rw)
		return CKR_SESSION_READ_ONLY;
	/* In a public session PKCS#11 sets the user's PIN: log in with the old
	 * one just for the change. (The server checks the old PIN again.) */
	if (temporary && (rv = vhsm_login(user, pOldPin, ulOldLen, session)) != CKR_OK)
		return rv;
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__ChangePasswordRequest op = VHSM__V1__CHANGE_PASSWORD_REQUEST__INIT;
	op.old_password.data = pOldPin;
	op.old_password.len = ulOldLen;
	op.new_password.data = pNewPin;
	op.new_password.len = ulNewLen;
	req.op_case = VHSM__V1__REQUEST__OP_CHANGE_PASSWORD;
	req.change_password = &op;
	Vhsm__V1__Response *resp;
	int code;
	rv = vp_rpc(&req, session, &resp, &code);
	vp_rpc_free(resp);
	if (temporary)
		vhsm_logout(session);
	explicit_bzero(session, sizeof(session));
	if (!temporary && code == VHSM__V1__ERROR_CODE__ERROR_CODE_SESSION_INVALID) {
		pthread_mutex_lock(&vp->lock);
		vp_slot_lost_login(slot, epoch);
		pthread_mutex_unlock(&vp->lock);
	}
	return rv;
}
