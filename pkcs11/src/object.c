#include <stdlib.h>
#include <string.h>

#include "object.h"
#include "vhsm.pb-c.h"

CK_KEY_TYPE vp_key_type_of(int t, bool *asymmetric)
{
	*asymmetric = true;
	switch (t) {
	case VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P256:
	case VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P384:
	case VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P521:
	case VHSM__V1__KEY_TYPE__KEY_TYPE_EC_SECP256K1:
		return CKK_EC;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_ED25519:
		return CKK_EC_EDWARDS;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_X25519:
		return CKK_EC_MONTGOMERY;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_2048:
	case VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_3072:
	case VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_4096:
		return CKK_RSA;
	}
	*asymmetric = false;
	switch (t) {
	case VHSM__V1__KEY_TYPE__KEY_TYPE_AES_256:
		return CKK_AES;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_CHACHA20:
		return CKK_CHACHA20;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_HMAC:
	case VHSM__V1__KEY_TYPE__KEY_TYPE_SECRET:
		return CKK_GENERIC_SECRET;
	}
	return (CK_KEY_TYPE)-1;
}

static bool spki_fits(const struct der_public_key *pub, CK_KEY_TYPE kt, int t)
{
	switch (kt) {
	case CKK_EC: {
		const uint8_t *oid = t == VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P256 ? der_oid_p256
				   : t == VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P384 ? der_oid_p384
				   : t == VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P521 ? der_oid_p521
									    : der_oid_secp256k1;
		size_t oid_len = t == VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P256 ? sizeof(der_oid_p256) : sizeof(der_oid_p384);
		return pub->kind == DER_KEY_EC && der_span_eq(pub->curve, oid, oid_len);
	}
	case CKK_EC_EDWARDS:
		return pub->kind == DER_KEY_ED25519;
	case CKK_EC_MONTGOMERY:
		return pub->kind == DER_KEY_X25519;
	case CKK_RSA: {
		unsigned long bits = t == VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_2048 ? 2048 : t == VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_3072 ? 3072 : 4096;
		return pub->kind == DER_KEY_RSA && pub->modulus_bits == bits;
	}
	}
	return false;
}

static bool label_ok(const char *s)
{
	size_t n = strlen(s);
	if (n > VP_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int vp_object_init_key(struct vp_object *o, CK_OBJECT_CLASS cls, int vhsm_type,
		       const char *key_id, const char *label, uint32_t usages,
		       bool extractable, uint32_t secret_len, const uint8_t *spki, size_t spki_len)
{
	memset(o, 0, sizeof(*o));
	bool asymmetric;
	CK_KEY_TYPE kt = vp_key_type_of(vhsm_type, &asymmetric);
	if (kt == (CK_KEY_TYPE)-1 || !key_id || !vp_valid_key_id(key_id, strlen(key_id)) || !label || !label_ok(label))
		return -1;
	if (asymmetric != (cls != CKO_SECRET_KEY) || (cls != CKO_SECRET_KEY && cls != CKO_PUBLIC_KEY && cls != CKO_PRIVATE_KEY))
		return -1;
	o->cls = cls;
	o->key_type = kt;
	o->vhsm_type = vhsm_type;
	strcpy(o->key_id, key_id);
	memcpy(o->id, key_id, strlen(key_id));
	o->id_len = strlen(key_id);
	strcpy(o->label, *label ? label : key_id);
	o->usages = usages;
	o->extractable = extractable;
	o->secret_len = secret_len;
	if (asymmetric) {
		if (!spki || spki_len == 0 || spki_len > 4096)
			return -1;
		o->der = malloc(spki_len);
		if (!o->der)
			return -1;
		memcpy(o->der, spki, spki_len);
		o->der_len = spki_len;
		if (der_parse_spki(o->der, o->der_len, &o->pub) || !spki_fits(&o->pub, kt, vhsm_type)) {
			vp_object_clear(o);
			return -1;
		}
	}
	return 0;
}

int vp_object_init_certificate(struct vp_object *o, const char *cert_id, const uint8_t *id, size_t id_len,
			       const char *label, const uint8_t *der, size_t der_len)
{
	memset(o, 0, sizeof(*o));
	if (!cert_id || !vp_valid_key_id(cert_id, strlen(cert_id)) || id_len > VP_CKA_ID_MAX || (id_len && !id) ||
	    !label || !label_ok(label) || !der || der_len == 0 || der_len > 16384)
		return -1;
	o->cls = CKO_CERTIFICATE;
	strcpy(o->key_id, cert_id);
	if (id_len)
		memcpy(o->id, id, id_len);
	o->id_len = id_len;
	strcpy(o->label, label);
	o->der = malloc(der_len);
	if (!o->der)
		return -1;
	memcpy(o->der, der, der_len);
	o->der_len = der_len;
	if (der_parse_certificate(o->der, o->der_len, &o->cert)) {
		vp_object_clear(o);
		return -1;
	}
	return 0;
}

void vp_object_clear(struct vp_object *o)
{
	free(o->der);
	memset(o, 0, sizeof(*o));
}

size_t vp_object_signature_len(const struct vp_object *o)
{
	switch (o->vhsm_type) {
	case VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P256:
	case VHSM__V1__KEY_TYPE__KEY_TYPE_EC_SECP256K1:
	case VHSM__V1__KEY_TYPE__KEY_TYPE_ED25519:
		return 64;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P384:
		return 96;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P521:
		return 132;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_2048:
		return 256;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_3072:
		return 384;
	case VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_4096:
		return 512;
	}
	return 0;
}

bool vp_object_hidden(const struct vp_object *o, const struct vp_slot_config *cfg)
{
	if (o->cls == CKO_CERTIFICATE) {
		if (cfg->n_only_ids == 0)
			return false;
		for (int i = 0; i < cfg->n_only_ids; i++)
			if (strlen(cfg->only_ids[i]) == o->id_len && memcmp(cfg->only_ids[i], o->id, o->id_len) == 0)
				return false;
		return true;
	}
	if (o->vhsm_type >= 0 && o->vhsm_type < 32 && (cfg->hidden_types & (1u << o->vhsm_type)))
		return true;
	if (cfg->n_only_ids == 0)
		return false;
	for (int i = 0; i < cfg->n_only_ids; i++)
		if (strcmp(cfg->only_ids[i], o->key_id) == 0)
			return false;
	return true;
}

/* ---- attributes ---------------------------------------------------------- */

enum attr_result { ATTR_OK, ATTR_SENSITIVE, ATTR_INVALID };

struct attr_value {
	const void *p;
	size_t len;
	union {
		CK_ULONG ul;
		CK_BBOOL b;
		uint8_t bytes[2 + 32];
	} scratch;
};

static enum attr_result set_bool(struct attr_value *v, bool b)
{
	v->scratch.b = b ? CK_TRUE : CK_FALSE;
	v->p = &v->scratch.b;
	v->len = sizeof(CK_BBOOL);
	return ATTR_OK;
}

static enum attr_result set_ulong(struct attr_value *v, CK_ULONG ul)
{
	v->scratch.ul = ul;
	v->p = &v->scratch.ul;
	v->len = sizeof(CK_ULONG);
	return ATTR_OK;
}

static enum attr_result set_bytes(struct attr_value *v, const void *p, size_t len)
{
	v->p = len ? p : "";
	v->len = len;
	return ATTR_OK;
}

static bool has(const struct vp_object *o, int usage)
{
	return (o->usages & VP_USE(usage)) != 0;
}

/* CKA_EC_POINT: a DER OCTET STRING around the point (EC: 04||X||Y;
 * Edwards/Montgomery: the 32 key bytes, as PKCS#11 3.0 section 2.3.6 says). */
static enum attr_result ec_point(const struct vp_object *o, struct attr_value *v, uint8_t *buf, size_t cap)
{
	size_t n = o->pub.point.len, head = n < 0x80 ? 2 : 3;
	if (n > 255 || head + n > cap)
		return ATTR_INVALID;
	buf[0] = 0x04;
	if (head == 2) {
		buf[1] = (uint8_t)n;
	} else {
		buf[1] = 0x81;
		buf[2] = (uint8_t)n;
	}
	memcpy(buf + head, o->pub.point.p, n);
	return set_bytes(v, buf, head + n);
}

static enum attr_result key_attr(const struct vp_object *o, CK_ATTRIBUTE_TYPE t, struct attr_value *v, uint8_t *buf, size_t cap)
{
	bool pub = o->cls == CKO_PUBLIC_KEY, priv = o->cls == CKO_PRIVATE_KEY, sec = o->cls == CKO_SECRET_KEY;
	switch (t) {
	case CKA_KEY_TYPE:
		return set_ulong(v, o->key_type);
	case CKA_ID:
		return set_bytes(v, o->id, o->id_len);
	case CKA_START_DATE:
	case CKA_END_DATE:
		return set_bytes(v, "", 0);
	case CKA_DERIVE:
		return set_bool(v, !pub && has(o, VHSM__V1__KEY_USAGE__KEY_USAGE_DERIVE));
	case CKA_LOCAL:
		return set_bool(v, true);
	case CKA_KEY_GEN_MECHANISM:
		return set_ulong(v, CK_UNAVAILABLE_INFORMATION);
	case CKA_SUBJECT:
		if (sec)
			return ATTR_INVALID;
		return set_bytes(v, "", 0);
	case CKA_PUBLIC_KEY_INFO:
		if (sec)
			return ATTR_INVALID;
		return set_bytes(v, o->der, o->der_len);
	case CKA_ENCRYPT:
		if (priv)
			return ATTR_INVALID;
		return set_bool(v, has(o, VHSM__V1__KEY_USAGE__KEY_USAGE_ENCRYPT));
	case CKA_VERIFY:
		if (priv)
			return ATTR_INVALID;
		return set_bool(v, has(o, sec ? VHSM__V1__KEY_USAGE__KEY_USAGE_MAC : VHSM__V1__KEY_USAGE__KEY_USAGE_VERIFY));
	case CKA_VERIFY_RECOVER:
		if (!pub)
			return ATTR_INVALID;
		return set_bool(v, false);
	case CKA_WRAP:
		if (priv)
			return ATTR_INVALID;
		return set_bool(v, has(o, VHSM__V1__KEY_USAGE__KEY_USAGE_WRAP));
	case CKA_TRUSTED:
		if (priv)
			return ATTR_INVALID;
		return set_bool(v, false);
	case CKA_DECRYPT:
		if (pub)
			return ATTR_INVALID;
		return set_bool(v, has(o, VHSM__V1__KEY_USAGE__KEY_USAGE_DECRYPT));
	case CKA_SIGN:
		if (pub)
			return ATTR_INVALID;
		return set_bool(v, has(o, sec ? VHSM__V1__KEY_USAGE__KEY_USAGE_MAC : VHSM__V1__KEY_USAGE__KEY_USAGE_SIGN));
	case CKA_SIGN_RECOVER:
		if (!priv)
			return ATTR_INVALID;
		return set_bool(v, false);
	case CKA_UNWRAP:
		if (pub)
			return ATTR_INVALID;
		return set_bool(v, has(o, VHSM__V1__KEY_USAGE__KEY_USAGE_UNWRAP));
	case CKA_SENSITIVE:
	case CKA_ALWAYS_SENSITIVE:
		if (pub)
			return ATTR_INVALID;
		return set_bool(v, true);
	case CKA_EXTRACTABLE:
		if (pub)
			return ATTR_INVALID;
		return set_bool(v, o->extractable);
	case CKA_NEVER_EXTRACTABLE:
		if (pub)
			return ATTR_INVALID;
		return set_bool(v, !o->extractable);
	case CKA_WRAP_WITH_TRUSTED:
		if (pub)
			return ATTR_INVALID;
		return set_bool(v, false);
	case CKA_ALWAYS_AUTHENTICATE:
		if (!priv)
			return ATTR_INVALID;
		return set_bool(v, false);
	case CKA_VALUE:
		if (sec || (priv && o->key_type != CKK_RSA))
			return ATTR_SENSITIVE;
		if (pub && o->key_type != CKK_RSA)
			break; /* EC public keys have CKA_EC_POINT, not CKA_VALUE */
		return ATTR_INVALID;
	case CKA_VALUE_LEN:
		if (!sec)
			return ATTR_INVALID;
		return set_ulong(v, o->secret_len);
	}

	if (o->key_type == CKK_EC || o->key_type == CKK_EC_EDWARDS || o->key_type == CKK_EC_MONTGOMERY) {
		if (t == CKA_EC_PARAMS)
			return set_bytes(v, o->pub.curve.p, o->pub.curve.len);
		if (t == CKA_EC_POINT && pub)
			return ec_point(o, v, buf, cap);
	}
	if (o->key_type == CKK_RSA) {
		switch (t) {
		case CKA_MODULUS:
			return set_bytes(v, o->pub.modulus.p, o->pub.modulus.len);
		case CKA_PUBLIC_EXPONENT:
			return set_bytes(v, o->pub.exponent.p, o->pub.exponent.len);
		case CKA_MODULUS_BITS:
			if (!pub)
				return ATTR_INVALID;
			return set_ulong(v, o->pub.modulus_bits);
		case CKA_PRIVATE_EXPONENT:
		case CKA_PRIME_1:
		case CKA_PRIME_2:
		case CKA_EXPONENT_1:
		case CKA_EXPONENT_2:
		case CKA_COEFFICIENT:
			if (priv)
				return ATTR_SENSITIVE;
			break;
		}
	}
	return ATTR_INVALID;
}

static enum attr_result cert_attr(const struct vp_object *o, CK_ATTRIBUTE_TYPE t, struct attr_value *v)
{
	switch (t) {
	case CKA_CERTIFICATE_TYPE:
		return set_ulong(v, CKC_X_509);
	case CKA_TRUSTED:
		return set_bool(v, false);
	case CKA_CERTIFICATE_CATEGORY:
		return set_ulong(v, 0); /* unspecified */
	case CKA_START_DATE:
	case CKA_END_DATE:
	case CKA_URL:
	case CKA_HASH_OF_SUBJECT_PUBLIC_KEY:
	case CKA_HASH_OF_ISSUER_PUBLIC_KEY:
		return set_bytes(v, "", 0);
	case CKA_JAVA_MIDP_SECURITY_DOMAIN:
		return set_ulong(v, 0);
	case CKA_PUBLIC_KEY_INFO:
		return set_bytes(v, o->cert.spki.p, o->cert.spki.len);
	case CKA_SUBJECT:
		return set_bytes(v, o->cert.subject.p, o->cert.subject.len);
	case CKA_ISSUER:
		return set_bytes(v, o->cert.issuer.p, o->cert.issuer.len);
	case CKA_SERIAL_NUMBER:
		return set_bytes(v, o->cert.serial.p, o->cert.serial.len);
	case CKA_ID:
		return set_bytes(v, o->id, o->id_len);
	case CKA_VALUE:
		return set_bytes(v, o->der, o->der_len);
	}
	return ATTR_INVALID;
}

static enum attr_result attr_of(const struct vp_object *o, CK_ATTRIBUTE_TYPE t, struct attr_value *v, uint8_t *buf, size_t cap)
{
	switch (t) {
	case CKA_CLASS:
		return set_ulong(v, o->cls);
	case CKA_TOKEN:
		return set_bool(v, true);
	case CKA_PRIVATE:
		return set_bool(v, o->cls == CKO_PRIVATE_KEY || o->cls == CKO_SECRET_KEY);
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
		return set_bool(v, false);
	case CKA_DESTROYABLE:
		return set_bool(v, true);
	case CKA_LABEL:
		return set_bytes(v, o->label, strlen(o->label));
	}
	if (o->cls == CKO_CERTIFICATE)
		return cert_attr(o, t, v);
	return key_attr(o, t, v, buf, cap);
}

CK_RV vp_object_get_attributes(const struct vp_object *o, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
	CK_RV rv = CKR_OK;
	for (CK_ULONG i = 0; i < count; i++) {
		struct attr_value v;
		uint8_t buf[300];
		enum attr_result r = attr_of(o, tmpl[i].type, &v, buf, sizeof(buf));
		if (r == ATTR_SENSITIVE) {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_ATTRIBUTE_SENSITIVE;
		} else if (r == ATTR_INVALID) {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_ATTRIBUTE_TYPE_INVALID;
		} else if (!tmpl[i].pValue) {
			tmpl[i].ulValueLen = v.len;
		} else if (tmpl[i].ulValueLen >= v.len) {
			memcpy(tmpl[i].pValue, v.p, v.len);
			tmpl[i].ulValueLen = v.len;
		} else {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
		}
	}
	return rv;
}

bool vp_object_matches(const struct vp_object *o, const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	for (CK_ULONG i = 0; i < count; i++) {
		struct attr_value v;
		uint8_t buf[300];
		if (attr_of(o, tmpl[i].type, &v, buf, sizeof(buf)) != ATTR_OK)
			return false;
		if (tmpl[i].ulValueLen != v.len || (v.len && (!tmpl[i].pValue || memcmp(tmpl[i].pValue, v.p, v.len) != 0)))
			return false;
	}
	return true;
}

const CK_ATTRIBUTE *vp_template_find(const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_ATTRIBUTE_TYPE type)
{
	for (CK_ULONG i = 0; tmpl && i < count; i++)
		if (tmpl[i].type == type)
			return &tmpl[i];
	return NULL;
}

int vp_template_bool(const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_ATTRIBUTE_TYPE type)
{
	const CK_ATTRIBUTE *a = vp_template_find(tmpl, count, type);
	if (!a)
		return -1;
	if (a->ulValueLen != sizeof(CK_BBOOL) || !a->pValue)
		return -2;
	return *(const CK_BBOOL *)a->pValue ? 1 : 0;
}

int vp_template_ulong(const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_ATTRIBUTE_TYPE type, CK_ULONG *out)
{
	const CK_ATTRIBUTE *a = vp_template_find(tmpl, count, type);
	if (!a)
		return 1;
	if (a->ulValueLen != sizeof(CK_ULONG) || !a->pValue)
		return -1;
	memcpy(out, a->pValue, sizeof(CK_ULONG));
	return 0;
}
