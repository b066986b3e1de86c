/*
 * PKCS#11 objects as the module shows VHSM's keys and certificates, and
 * their attributes. Pure functions over a struct vp_object: no locking, no
 * I/O (the fuzzer and unit tests drive them directly).
 */
#ifndef VP_OBJECT_H
#define VP_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkcs11_v3.h"
#include "der.h"
#include "config.h"

#define VP_LABEL_MAX 128
#define VP_CKA_ID_MAX 64

struct vp_object {
	CK_OBJECT_HANDLE handle;
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE key_type;       /* keys */
	int vhsm_type;              /* VHSM KeyType, keys */
	char key_id[VP_KEY_ID_MAX + 1]; /* keys: VHSM key id; certificates: cert_id */
	uint8_t id[VP_CKA_ID_MAX];  /* CKA_ID */
	size_t id_len;
	char label[VP_LABEL_MAX + 1];
	uint32_t usages;            /* bit n: VHSM KeyUsage n */
	bool extractable;
	uint32_t secret_len;        /* secret keys: bytes */
	uint8_t *der;               /* SPKI (key pairs) or the certificate; owned */
	size_t der_len;
	struct der_public_key pub;  /* spans into der (key pairs, and certificates' keys) */
	struct der_certificate cert;/* spans into der (certificates) */
	bool seen;                  /* refresh bookkeeping */
};

/* Usage bits. */
#define VP_USE(u) (1u << (u))

/* Fills the key fields from a VHSM KeyInfo-like description; spki may be NULL
 * for secret keys. Returns 0, or -1 if the description is not acceptable. */
int vp_object_init_key(struct vp_object *o, CK_OBJECT_CLASS cls, int vhsm_type,
		       const char *key_id, const char *label, const uint32_t usages,
		       bool extractable, uint32_t secret_len, const uint8_t *spki, size_t spki_len);

int vp_object_init_certificate(struct vp_object *o, const char *cert_id, const uint8_t *id, size_t id_len,
			       const char *label, const uint8_t *der, size_t der_len);

void vp_object_clear(struct vp_object *o);

/* The PKCS#11 key type and object shape for a VHSM key type; 0 if unknown. */
CK_KEY_TYPE vp_key_type_of(int vhsm_type, bool *asymmetric);

/* C_GetAttributeValue on one object, exactly as PKCS#11 specifies. */
CK_RV vp_object_get_attributes(const struct vp_object *o, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count);

/* True if every attribute of the template is present with an equal value. */
bool vp_object_matches(const struct vp_object *o, const CK_ATTRIBUTE *tmpl, CK_ULONG count);

/* True if the slot's filter (hide-types, only-ids) hides this object. */
bool vp_object_hidden(const struct vp_object *o, const struct vp_slot_config *cfg);

/* The signature length a key produces (EC: r||s; RSA: modulus bytes), 0 if none. */
size_t vp_object_signature_len(const struct vp_object *o);

/* Template helpers. */
const CK_ATTRIBUTE *vp_template_find(const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_ATTRIBUTE_TYPE type);
/* -1 absent, 0 false, 1 true, -2 malformed */
int vp_template_bool(const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_ATTRIBUTE_TYPE type);
/* 0 found (value in *out), 1 absent, -1 malformed */
int vp_template_ulong(const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_ATTRIBUTE_TYPE type, CK_ULONG *out);

#endif
