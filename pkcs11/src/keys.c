/*
 * Objects that change the token: key generation (pairs and secrets), ECDH
 * derivation, certificates (C_CreateObject), and C_DestroyObject.
 */
#include <stdlib.h>
#include <string.h>

#include "vp.h"
#include "mech.h"
#include "functions.h"

#define T(x) VHSM__V1__KEY_TYPE__KEY_TYPE_##x
#define U(x) VHSM__V1__KEY_USAGE__KEY_USAGE_##x

/* What a creating call needs from its session: slot, VHSM session, RW. */
struct writer {
	CK_SLOT_ID slot;
	uint8_t session[VP_SESSION_ID_LEN];
	uint64_t epoch;
};

static CK_RV writer_get(CK_SESSION_HANDLE h, struct writer *w)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(h);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else {
		w->slot = s->slot;
		rv = vp_session_id(&vp->slots[s->slot], w->session, &w->epoch);
		if (rv == CKR_OK && !(s->flags & CKF_RW_SESSION))
			rv = CKR_SESSION_READ_ONLY; /* every VHSM object is a token object */
	}
	pthread_mutex_unlock(&vp->lock);
	return rv;
}

static CK_RV writer_call(struct writer *w, Vhsm__V1__Request *req, Vhsm__V1__Response **resp)
{
	int code;
	CK_RV rv = vp_rpc(req, w->session, resp, &code);
	if (code == VHSM__V1__ERROR_CODE__ERROR_CODE_SESSION_INVALID) {
		pthread_mutex_lock(&vp->lock);
		vp_slot_lost_login(&vp->slots[w->slot], w->epoch);
		pthread_mutex_unlock(&vp->lock);
	}
	return rv;
}

/* ---- templates -------------------------------------------------------------- */

struct spec {
	char key_id[VP_KEY_ID_MAX + 1];
	char label[VP_LABEL_MAX + 1];
	Vhsm__V1__KeyUsage usages[8];
	size_t n_usages;
	bool extractable;
};

/* CKA_ID (the VHSM key id's bytes), CKA_LABEL, and the flags VHSM cannot
 * change, from one template. */
static CK_RV common_attrs(const CK_ATTRIBUTE *t, CK_ULONG n, struct spec *sp, bool secret_half)
{
	for (CK_ULONG i = 0; i < n; i++) {
		const CK_ATTRIBUTE *a = &t[i];
		if (a->ulValueLen && !a->pValue)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		switch (a->type) {
		case CKA_ID: {
			if (!vp_valid_key_id(a->pValue, a->ulValueLen))
				return CKR_ATTRIBUTE_VALUE_INVALID; /* docs/pkcs11.md: ids are VHSM key ids */
			if (sp->key_id[0] && (strlen(sp->key_id) != a->ulValueLen || memcmp(sp->key_id, a->pValue, a->ulValueLen)))
				return CKR_TEMPLATE_INCONSISTENT;
			memcpy(sp->key_id, a->pValue, a->ulValueLen);
			sp->key_id[a->ulValueLen] = '\0';
			break;
		}
		case CKA_LABEL:
			if (a->ulValueLen > VP_LABEL_MAX || memchr(a->pValue, 0, a->ulValueLen))
				return CKR_ATTRIBUTE_VALUE_INVALID;
			for (CK_ULONG k = 0; k < a->ulValueLen; k++)
				if (((const uint8_t *)a->pValue)[k] < 0x20 || ((const uint8_t *)a->pValue)[k] == 0x7f)
					return CKR_ATTRIBUTE_VALUE_INVALID;
			memcpy(sp->label, a->pValue, a->ulValueLen);
			sp->label[a->ulValueLen] = '\0';
			break;
		case CKA_TOKEN:
			if (vp_template_bool(a, 1, CKA_TOKEN) != 1)
				return CKR_TEMPLATE_INCONSISTENT; /* no session objects */
			break;
		case CKA_SENSITIVE:
			if (secret_half && vp_template_bool(a, 1, CKA_SENSITIVE) != 1)
				return CKR_TEMPLATE_INCONSISTENT; /* VHSM keys never leave readable */
			break;
		case CKA_EXTRACTABLE:
			if (secret_half) {
				int b = vp_template_bool(a, 1, CKA_EXTRACTABLE);
				if (b < 0)
					return CKR_ATTRIBUTE_VALUE_INVALID;
				sp->extractable = b == 1;
			}
			break;
		}
	}
	return CKR_OK;
}

static void add_usage(struct spec *sp, Vhsm__V1__KeyUsage u)
{
	for (size_t i = 0; i < sp->n_usages; i++)
		if (sp->usages[i] == u)
			return;
	if (sp->n_usages < sizeof(sp->usages) / sizeof(sp->usages[0]))
		sp->usages[sp->n_usages++] = u;
}

/* The usages a VHSM key type can have (docs/mechanisms.md). Consumers set
 * usage attributes by habit (pkcs11-tool asks CKA_DERIVE of every EC-like
 * key): the ones the type cannot have are dropped, and the objects show
 * what the key really allows. */
static uint32_t allowed_usages(int type)
{
	const uint32_t sv = VP_USE(U(SIGN)) | VP_USE(U(VERIFY));
	switch (type) {
	case T(EC_P256):
	case T(EC_P384):
	case T(EC_P521):
		return sv | VP_USE(U(DERIVE));
	case T(EC_SECP256K1):
	case T(ED25519):
		return sv;
	case T(X25519):
	case T(SECRET):
		return VP_USE(U(DERIVE));
	case T(RSA_2048):
	case T(RSA_3072):
	case T(RSA_4096):
		return sv | VP_USE(U(ENCRYPT)) | VP_USE(U(DECRYPT)) | VP_USE(U(WRAP)) | VP_USE(U(UNWRAP));
	case T(AES_256):
	case T(CHACHA20):
		return VP_USE(U(ENCRYPT)) | VP_USE(U(DECRYPT));
	case T(HMAC):
		return VP_USE(U(MAC));
	}
	return 0;
}

static void restrict_usages(struct spec *sp, int type)
{
	size_t kept = 0;
	for (size_t i = 0; i < sp->n_usages; i++)
		if (allowed_usages(type) & VP_USE(sp->usages[i]))
			sp->usages[kept++] = sp->usages[i];
	sp->n_usages = kept;
}

static void sort_usages(struct spec *sp)
{
	/* Canonical order on the wire: ascending. */
	for (size_t i = 1; i < sp->n_usages; i++)
		for (size_t k = i; k > 0 && sp->usages[k - 1] > sp->usages[k]; k--) {
			Vhsm__V1__KeyUsage x = sp->usages[k];
			sp->usages[k] = sp->usages[k - 1];
			sp->usages[k - 1] = x;
		}
}

/* CKA_<usage> = TRUE in template t adds usage u (and its pair: one VHSM key
 * serves both halves, so signing implies verifying, and so on). */
static CK_RV usage_attr(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, struct spec *sp,
			Vhsm__V1__KeyUsage u, Vhsm__V1__KeyUsage pair)
{
	int b = vp_template_bool(t, n, type);
	if (b == -2)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (b == 1) {
		add_usage(sp, u);
		if (pair)
			add_usage(sp, pair);
	}
	return CKR_OK;
}

/* ---- key pairs -------------------------------------------------------------- */

static int ec_type_of(const CK_ATTRIBUTE *params)
{
	struct der_span s = { params->pValue, params->ulValueLen };
	if (der_span_eq(s, der_oid_p256, sizeof(der_oid_p256)))
		return T(EC_P256);
	if (der_span_eq(s, der_oid_p384, sizeof(der_oid_p384)))
		return T(EC_P384);
	if (der_span_eq(s, der_oid_p521, sizeof(der_oid_p521)))
		return T(EC_P521);
	if (der_span_eq(s, der_oid_secp256k1, sizeof(der_oid_secp256k1)))
		return T(EC_SECP256K1);
	return 0;
}

static int edwards_type_of(const CK_ATTRIBUTE *params)
{
	static const uint8_t printable[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9' };
	struct der_span s = { params->pValue, params->ulValueLen };
	if (der_span_eq(s, der_oid_ed25519, sizeof(der_oid_ed25519)) || der_span_eq(s, printable, sizeof(printable)))
		return T(ED25519);
	return 0;
}

static CK_RV pair_type(CK_MECHANISM_TYPE mech, const CK_ATTRIBUTE *pub, CK_ULONG npub, int *type)
{
	const CK_ATTRIBUTE *params = vp_template_find(pub, npub, CKA_EC_PARAMS);
	if (params && !params->pValue)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	switch (mech) {
	case CKM_EC_KEY_PAIR_GEN:
		if (!params)
			return CKR_TEMPLATE_INCOMPLETE;
		*type = ec_type_of(params);
		return *type ? CKR_OK : CKR_CURVE_NOT_SUPPORTED;
	case CKM_EC_EDWARDS_KEY_PAIR_GEN:
		*type = params ? edwards_type_of(params) : T(ED25519);
		return *type ? CKR_OK : CKR_CURVE_NOT_SUPPORTED;
	case CKM_RSA_PKCS_KEY_PAIR_GEN: {
		CK_ULONG bits;
		int r = vp_template_ulong(pub, npub, CKA_MODULUS_BITS, &bits);
		if (r == 1)
			return CKR_TEMPLATE_INCOMPLETE;
		if (r < 0)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		*type = bits == 2048 ? T(RSA_2048) : bits == 3072 ? T(RSA_3072) : bits == 4096 ? T(RSA_4096) : 0;
		if (!*type)
			return CKR_KEY_SIZE_RANGE;
		const CK_ATTRIBUTE *e = vp_template_find(pub, npub, CKA_PUBLIC_EXPONENT);
		if (e) {
			const uint8_t *p = e->pValue;
			size_t len = e->ulValueLen, z = 0;
			while (p && z < len && p[z] == 0)
				z++;
			if (!p || len - z != 3 || p[z] != 1 || p[z + 1] != 0 || p[z + 2] != 1)
				return CKR_ATTRIBUTE_VALUE_INVALID; /* VHSM: e = 65537 only */
		}
		return CKR_OK;
	}
	}
	return CKR_MECHANISM_INVALID;
}

/* Creates the objects for a new key and puts them into the slot. */
static CK_RV adopt_key(struct writer *w, const Vhsm__V1__KeyInfo *k, CK_OBJECT_HANDLE *pub_h, CK_OBJECT_HANDLE *priv_h)
{
	bool asymmetric;
	if (!k || !k->key_id || vp_key_type_of(k->type, &asymmetric) == (CK_KEY_TYPE)-1)
		return CKR_DEVICE_ERROR;
	uint32_t usages = 0;
	for (size_t i = 0; i < k->n_usages; i++)
		if (k->usages[i] > 0 && k->usages[i] < 32)
			usages |= VP_USE(k->usages[i]);
	struct vp_object *pub = NULL, *priv = calloc(1, sizeof(*priv));
	if (!priv)
		return CKR_HOST_MEMORY;
	CK_RV rv = CKR_OK;
	if (asymmetric) {
		Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
		Vhsm__V1__ExportPublicKeyRequest op = VHSM__V1__EXPORT_PUBLIC_KEY_REQUEST__INIT;
		op.key_id = k->key_id;
		op.format = VHSM__V1__PUBLIC_KEY_FORMAT__PUBLIC_KEY_FORMAT_SPKI_DER;
		req.op_case = VHSM__V1__REQUEST__OP_EXPORT_PUBLIC_KEY;
		req.export_public_key = &op;
		Vhsm__V1__Response *resp;
		rv = writer_call(w, &req, &resp);
		if (rv == CKR_OK) {
			const ProtobufCBinaryData *d = &resp->export_public_key->data;
			pub = calloc(1, sizeof(*pub));
			if (!pub ||
			    vp_object_init_key(pub, CKO_PUBLIC_KEY, k->type, k->key_id, k->label, usages, k->extractable, 0, d->data, d->len) ||
			    vp_object_init_key(priv, CKO_PRIVATE_KEY, k->type, k->key_id, k->label, usages, k->extractable, 0, d->data, d->len))
				rv = CKR_DEVICE_ERROR;
			vp_rpc_free(resp);
		}
	} else if (vp_object_init_key(priv, CKO_SECRET_KEY, k->type, k->key_id, k->label, usages, k->extractable, k->length_bytes, NULL, 0)) {
		rv = CKR_DEVICE_ERROR;
	}
	if (rv != CKR_OK) {
		if (pub)
			vp_object_clear(pub);
		vp_object_clear(priv);
		free(pub);
		free(priv);
		return rv;
	}
	pthread_mutex_lock(&vp->lock);
	struct vp_slot *slot = &vp->slots[w->slot];
	if (pub)
		*pub_h = vp_slot_put_object(slot, pub);
	*priv_h = vp_slot_put_object(slot, priv);
	pthread_mutex_unlock(&vp->lock);
	return (pub && *pub_h == CK_INVALID_HANDLE) || *priv_h == CK_INVALID_HANDLE ? CKR_HOST_MEMORY : CKR_OK;
}

static CK_RV generate(struct writer *w, int type, const struct spec *sp, uint32_t length, CK_OBJECT_HANDLE *pub_h, CK_OBJECT_HANDLE *priv_h)
{
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__GenerateKeyRequest op = VHSM__V1__GENERATE_KEY_REQUEST__INIT;
	Vhsm__V1__KeySpec ks = VHSM__V1__KEY_SPEC__INIT;
	ks.type = type;
	ks.key_id = (char *)sp->key_id;
	ks.label = (char *)sp->label;
	ks.n_usages = sp->n_usages;
	ks.usages = (Vhsm__V1__KeyUsage *)sp->usages;
	ks.extractable = sp->extractable;
	op.spec = &ks;
	op.length_bytes = length;
	req.op_case = VHSM__V1__REQUEST__OP_GENERATE_KEY;
	req.generate_key = &op;
	Vhsm__V1__Response *resp;
	CK_RV rv = writer_call(w, &req, &resp);
	if (rv != CKR_OK)
		return rv;
	rv = adopt_key(w, resp->generate_key, pub_h, priv_h);
	vp_rpc_free(resp);
	return rv;
}

CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub, CK_ULONG npub,
			CK_ATTRIBUTE_PTR priv, CK_ULONG npriv, CK_OBJECT_HANDLE_PTR pub_h, CK_OBJECT_HANDLE_PTR priv_h)
{
	if (!m || !pub_h || !priv_h || (!pub && npub) || (!priv && npriv))
		return vp_check() ?: CKR_ARGUMENTS_BAD;
	struct writer w;
	CK_RV rv = writer_get(h, &w);
	if (rv != CKR_OK)
		return rv;
	const struct vp_mech *mech = vp_mech_find(m->mechanism);
	int type = 0;
	struct spec sp = { 0 };
	if (!mech || !(mech->flags & CKF_GENERATE_KEY_PAIR))
		rv = CKR_MECHANISM_INVALID;
	else if (m->ulParameterLen)
		rv = CKR_MECHANISM_PARAM_INVALID;
	if (rv == CKR_OK)
		rv = pair_type(m->mechanism, pub, npub, &type);
	if (rv == CKR_OK)
		rv = common_attrs(pub, npub, &sp, false);
	if (rv == CKR_OK)
		rv = common_attrs(priv, npriv, &sp, true);
	/* Which template's attribute gives which usage (and its counterpart). */
	static const struct { bool pub; CK_ATTRIBUTE_TYPE attr; Vhsm__V1__KeyUsage use, pair; } usage_map[] = {
		{ true, CKA_VERIFY, U(VERIFY), U(SIGN) }, { true, CKA_ENCRYPT, U(ENCRYPT), U(DECRYPT) },
		{ true, CKA_WRAP, U(WRAP), U(UNWRAP) }, { false, CKA_SIGN, U(SIGN), U(VERIFY) },
		{ false, CKA_DECRYPT, U(DECRYPT), U(ENCRYPT) }, { false, CKA_UNWRAP, U(UNWRAP), U(WRAP) },
		{ false, CKA_DERIVE, U(DERIVE), 0 },
	};
	for (size_t i = 0; rv == CKR_OK && i < sizeof(usage_map) / sizeof(usage_map[0]); i++)
		rv = usage_attr(usage_map[i].pub ? pub : priv, usage_map[i].pub ? npub : npriv, usage_map[i].attr, &sp,
				usage_map[i].use, usage_map[i].pair);
	restrict_usages(&sp, type);
	sort_usages(&sp);
	if (rv == CKR_OK)
		rv = generate(&w, type, &sp, 0, pub_h, priv_h);
	explicit_bzero(w.session, sizeof(w.session));
	return rv;
}

CK_RV C_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR key_h)
{
	if (!m || !key_h || (!t && n))
		return vp_check() ?: CKR_ARGUMENTS_BAD;
	struct writer w;
	CK_RV rv = writer_get(h, &w);
	if (rv != CKR_OK)
		return rv;
	struct spec sp = { 0 };
	int type = 0;
	CK_ULONG len = 0, kt;
	int has_len = vp_template_ulong(t, n, CKA_VALUE_LEN, &len);
	int has_kt = vp_template_ulong(t, n, CKA_KEY_TYPE, &kt);
	if (has_len < 0 || has_kt < 0)
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
	else if (m->ulParameterLen)
		rv = CKR_MECHANISM_PARAM_INVALID;
	else if (m->mechanism == CKM_AES_KEY_GEN) {
		if ((has_len == 0 && len != 32) || (has_kt == 0 && kt != CKK_AES))
			rv = has_len == 0 && len != 32 ? CKR_KEY_SIZE_RANGE : CKR_TEMPLATE_INCONSISTENT; /* AES-256 only */
		type = T(AES_256);
		len = 0;
		if (rv == CKR_OK)
			rv = usage_attr(t, n, CKA_ENCRYPT, &sp, U(ENCRYPT), 0);
		if (rv == CKR_OK)
			rv = usage_attr(t, n, CKA_DECRYPT, &sp, U(DECRYPT), 0);
	} else if (m->mechanism == CKM_GENERIC_SECRET_KEY_GEN) {
		if (has_kt == 0 && kt != CKK_GENERIC_SECRET)
			rv = CKR_TEMPLATE_INCONSISTENT;
		/* A MAC key (HMAC, 16..64 bytes) unless only derivation is asked. */
		bool mac = vp_template_bool(t, n, CKA_SIGN) == 1 || vp_template_bool(t, n, CKA_VERIFY) == 1;
		bool derive = vp_template_bool(t, n, CKA_DERIVE) == 1;
		if (mac && derive)
			rv = CKR_TEMPLATE_INCONSISTENT; /* VHSM: HMAC keys cannot derive */
		type = derive ? T(SECRET) : T(HMAC);
		if (has_len != 0)
			len = 32;
		if (type == T(HMAC) && (len < 16 || len > 64))
			rv = CKR_KEY_SIZE_RANGE;
		if (type == T(SECRET) && (len < 16 || len > 512))
			rv = CKR_KEY_SIZE_RANGE;
		add_usage(&sp, derive ? U(DERIVE) : U(MAC));
	} else {
		rv = CKR_MECHANISM_INVALID;
	}
	if (rv == CKR_OK)
		rv = common_attrs(t, n, &sp, true);
	restrict_usages(&sp, type);
	sort_usages(&sp);
	CK_OBJECT_HANDLE unused = CK_INVALID_HANDLE;
	if (rv == CKR_OK)
		rv = generate(&w, type, &sp, (uint32_t)len, &unused, key_h);
	explicit_bzero(w.session, sizeof(w.session));
	return rv;
}

/* ---- ECDH ------------------------------------------------------------------------ */

/* The peer point, raw (04||X||Y) or wrapped in a DER OCTET STRING. */
static bool peer_point(const CK_ECDH1_DERIVE_PARAMS *p, const uint8_t **point, size_t *len)
{
	if (!p->pPublicData || p->ulPublicDataLen == 0 || p->ulPublicDataLen > 1024)
		return false;
	struct der_span in = { p->pPublicData, p->ulPublicDataLen }, v;
	uint8_t tag;
	if (in.p[0] == 0x04 && der_next(&in, &tag, &v, NULL) == 0 && in.len == 0 && v.len > 0 && v.p[0] == 0x04 &&
	    (v.len & 1) == 1) {
		*point = v.p;
		*len = v.len;
		return true;
	}
	*point = p->pPublicData;
	*len = p->ulPublicDataLen;
	return true;
}

CK_RV C_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR key_h)
{
	if (!m || !key_h || (!t && n))
		return vp_check() ?: CKR_ARGUMENTS_BAD;
	struct writer w;
	CK_RV rv = writer_get(h, &w);
	if (rv != CKR_OK)
		return rv;
	char base_id[VP_KEY_ID_MAX + 1] = "";
	size_t field = 0;
	if (m->mechanism != CKM_ECDH1_DERIVE) {
		rv = CKR_MECHANISM_INVALID;
	} else {
		pthread_mutex_lock(&vp->lock);
		struct vp_object *k = vp_object_get(&vp->slots[w.slot], base);
		if (!k)
			rv = CKR_KEY_HANDLE_INVALID;
		else if (k->cls != CKO_PRIVATE_KEY || k->key_type != CKK_EC)
			rv = CKR_KEY_TYPE_INCONSISTENT;
		else if (!(k->usages & VP_USE(U(DERIVE))))
			rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
		else {
			strcpy(base_id, k->key_id);
			field = (k->pub.point.len - 1) / 2;
		}
		pthread_mutex_unlock(&vp->lock);
	}
	const CK_ECDH1_DERIVE_PARAMS *p = m->pParameter;
	const uint8_t *point = NULL;
	size_t point_len = 0;
	if (rv == CKR_OK && (!p || m->ulParameterLen != sizeof(*p) || p->kdf != CKD_NULL || p->ulSharedDataLen ||
			     !peer_point(p, &point, &point_len)))
		rv = CKR_MECHANISM_PARAM_INVALID; /* VHSM: the raw shared secret, no KDF */
	CK_ULONG cls, kt, len;
	int r;
	if (rv == CKR_OK && ((r = vp_template_ulong(t, n, CKA_CLASS, &cls)) < 0 || (r == 0 && cls != CKO_SECRET_KEY)))
		rv = CKR_TEMPLATE_INCONSISTENT;
	if (rv == CKR_OK && ((r = vp_template_ulong(t, n, CKA_KEY_TYPE, &kt)) < 0 || (r == 0 && kt != CKK_GENERIC_SECRET)))
		rv = CKR_TEMPLATE_INCONSISTENT;
	if (rv == CKR_OK && ((r = vp_template_ulong(t, n, CKA_VALUE_LEN, &len)) < 0 || (r == 0 && len != field)))
		rv = CKR_TEMPLATE_INCONSISTENT; /* the x coordinate, whole */
	struct spec sp = { 0 };
	if (rv == CKR_OK)
		rv = common_attrs(t, n, &sp, true);
	add_usage(&sp, U(DERIVE));
	if (rv == CKR_OK) {
		Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
		Vhsm__V1__AgreeKeyRequest op = VHSM__V1__AGREE_KEY_REQUEST__INIT;
		Vhsm__V1__KeySpec ks = VHSM__V1__KEY_SPEC__INIT;
		ks.type = T(SECRET);
		ks.key_id = sp.key_id;
		ks.label = sp.label;
		ks.n_usages = sp.n_usages;
		ks.usages = sp.usages;
		ks.extractable = sp.extractable;
		op.private_key_id = base_id;
		op.peer_public_key.data = (uint8_t *)point;
		op.peer_public_key.len = point_len;
		op.result = &ks;
		req.op_case = VHSM__V1__REQUEST__OP_AGREE_KEY;
		req.agree_key = &op;
		Vhsm__V1__Response *resp;
		rv = writer_call(&w, &req, &resp);
		if (rv == CKR_OK) {
			CK_OBJECT_HANDLE unused;
			rv = adopt_key(&w, resp->agree_key->key, &unused, key_h);
			vp_rpc_free(resp); /* zeroes key_material */
		}
	}
	explicit_bzero(w.session, sizeof(w.session));
	return rv;
}

/* ---- certificates ------------------------------------------------------------------ */

static CK_RV certificate_template(const CK_ATTRIBUTE *t, CK_ULONG n, const uint8_t **der, size_t *der_len,
				  const uint8_t **id, size_t *id_len, char *label)
{
	const CK_ATTRIBUTE *value = vp_template_find(t, n, CKA_VALUE);
	if (!value || !value->pValue || value->ulValueLen == 0)
		return CKR_TEMPLATE_INCOMPLETE;
	if (value->ulValueLen > 16384)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	struct der_certificate cert;
	if (der_parse_certificate(value->pValue, value->ulValueLen, &cert))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	*der = value->pValue;
	*der_len = value->ulValueLen;
	for (CK_ULONG i = 0; i < n; i++) {
		const CK_ATTRIBUTE *a = &t[i];
		struct der_span mine = { NULL, 0 };
		if (a->ulValueLen && !a->pValue)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		switch (a->type) {
		case CKA_CLASS:
		case CKA_VALUE:
			continue;
		case CKA_CERTIFICATE_TYPE: {
			CK_ULONG ct;
			if (vp_template_ulong(a, 1, a->type, &ct) || ct != CKC_X_509)
				return CKR_ATTRIBUTE_VALUE_INVALID;
			continue;
		}
		case CKA_TOKEN:
			if (vp_template_bool(a, 1, a->type) != 1)
				return CKR_TEMPLATE_INCONSISTENT;
			continue;
		case CKA_PRIVATE:
		case CKA_TRUSTED:
		case CKA_MODIFIABLE:
			if (vp_template_bool(a, 1, a->type) < 0)
				return CKR_ATTRIBUTE_VALUE_INVALID;
			if (a->type != CKA_MODIFIABLE && vp_template_bool(a, 1, a->type) == 1)
				return CKR_TEMPLATE_INCONSISTENT; /* certificates here are public and untrusted */
			continue;
		case CKA_ID:
			if (a->ulValueLen > VP_CKA_ID_MAX)
				return CKR_ATTRIBUTE_VALUE_INVALID;
			*id = a->pValue;
			*id_len = a->ulValueLen;
			continue;
		case CKA_LABEL:
			if (a->ulValueLen > VP_LABEL_MAX || memchr(a->pValue, 0, a->ulValueLen))
				return CKR_ATTRIBUTE_VALUE_INVALID;
			memcpy(label, a->pValue, a->ulValueLen);
			label[a->ulValueLen] = '\0';
			continue;
		case CKA_SUBJECT:
			mine = cert.subject;
			break;
		case CKA_ISSUER:
			mine = cert.issuer;
			break;
		case CKA_SERIAL_NUMBER:
			mine = cert.serial;
			break;
		default:
			return CKR_ATTRIBUTE_TYPE_INVALID;
		}
		/* Given explicitly: must say what the certificate says. */
		if (!der_span_eq(mine, a->pValue, a->ulValueLen))
			return CKR_TEMPLATE_INCONSISTENT;
	}
	return CKR_OK;
}

CK_RV C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR obj_h)
{
	if (!obj_h || (!t && n))
		return vp_check() ?: CKR_ARGUMENTS_BAD;
	CK_ULONG cls;
	int r = vp_template_ulong(t, n, CKA_CLASS, &cls);
	if (r == 1)
		return vp_check() ?: CKR_TEMPLATE_INCOMPLETE;
	if (r < 0 || cls != CKO_CERTIFICATE)
		return vp_check() ?: CKR_ATTRIBUTE_VALUE_INVALID; /* keys are generated, not imported, here */
	struct writer w;
	CK_RV rv = writer_get(h, &w);
	if (rv != CKR_OK)
		return rv;
	const uint8_t *der = NULL, *id = NULL;
	size_t der_len = 0, id_len = 0;
	char label[VP_LABEL_MAX + 1] = "";
	rv = certificate_template(t, n, &der, &der_len, &id, &id_len, label);
	if (rv == CKR_OK) {
		Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
		Vhsm__V1__CreateCertificateRequest op = VHSM__V1__CREATE_CERTIFICATE_REQUEST__INIT;
		op.id.data = (uint8_t *)id;
		op.id.len = id_len;
		op.label = label;
		op.der.data = (uint8_t *)der;
		op.der.len = der_len;
		req.op_case = VHSM__V1__REQUEST__OP_CREATE_CERTIFICATE;
		req.create_certificate = &op;
		Vhsm__V1__Response *resp;
		rv = writer_call(&w, &req, &resp);
		if (rv == CKR_OK) {
			const Vhsm__V1__CertificateInfo *c = resp->create_certificate;
			struct vp_object *o = calloc(1, sizeof(*o));
			if (!o || vp_object_init_certificate(o, c->cert_id, c->id.data, c->id.len, c->label, c->der.data, c->der.len)) {
				free(o);
				rv = CKR_DEVICE_ERROR;
			} else {
				pthread_mutex_lock(&vp->lock);
				*obj_h = vp_slot_put_object(&vp->slots[w.slot], o);
				pthread_mutex_unlock(&vp->lock);
				if (*obj_h == CK_INVALID_HANDLE)
					rv = CKR_HOST_MEMORY;
			}
			vp_rpc_free(resp);
		}
	}
	explicit_bzero(w.session, sizeof(w.session));
	return rv;
}

/* ---- destroy ------------------------------------------------------------------------- */

CK_RV C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj)
{
	struct writer w;
	CK_RV rv = writer_get(h, &w);
	if (rv != CKR_OK)
		return rv;
	char id[VP_KEY_ID_MAX + 1];
	bool certificate = false;
	pthread_mutex_lock(&vp->lock);
	struct vp_object *o = vp_object_get(&vp->slots[w.slot], obj);
	if (!o)
		rv = CKR_OBJECT_HANDLE_INVALID;
	else {
		strcpy(id, o->key_id);
		certificate = o->cls == CKO_CERTIFICATE;
	}
	pthread_mutex_unlock(&vp->lock);
	if (rv == CKR_OK) {
		Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
		Vhsm__V1__DeleteKeyRequest kop = VHSM__V1__DELETE_KEY_REQUEST__INIT;
		Vhsm__V1__DeleteCertificateRequest cop = VHSM__V1__DELETE_CERTIFICATE_REQUEST__INIT;
		if (certificate) {
			cop.cert_id = id;
			req.op_case = VHSM__V1__REQUEST__OP_DELETE_CERTIFICATE;
			req.delete_certificate = &cop;
		} else {
			/* One VHSM key is both halves of a pair: both objects go. */
			kop.key_id = id;
			req.op_case = VHSM__V1__REQUEST__OP_DELETE_KEY;
			req.delete_key = &kop;
		}
		Vhsm__V1__Response *resp;
		rv = writer_call(&w, &req, &resp);
		vp_rpc_free(resp);
		if (rv == CKR_KEY_HANDLE_INVALID)
			rv = CKR_OBJECT_HANDLE_INVALID;
		if (rv == CKR_OK || rv == CKR_OBJECT_HANDLE_INVALID) {
			pthread_mutex_lock(&vp->lock);
			vp_slot_drop_objects(&vp->slots[w.slot], id, certificate);
			pthread_mutex_unlock(&vp->lock);
		}
	}
	explicit_bzero(w.session, sizeof(w.session));
	return rv;
}
