/*
 * libFuzzer target over everything the module reads from outside: server
 * replies (vp_rpc_decode, then the objects built from listed keys and
 * certificates), SPKI and certificate DER, the configuration file, and
 * attribute templates handed in by applications.
 *
 * Input: byte 0 selects the target; the rest is its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "der.h"
#include "object.h"
#include "rpc.h"
#include "vectors.h"

static const int ops[] = {
	VHSM__V1__REQUEST__OP_LIST_PUBLIC_OBJECTS, VHSM__V1__REQUEST__OP_LIST_KEYS, VHSM__V1__REQUEST__OP_LOGIN,
	VHSM__V1__REQUEST__OP_SIGN, VHSM__V1__REQUEST__OP_GENERATE_KEY, VHSM__V1__REQUEST__OP_CREATE_CERTIFICATE,
	VHSM__V1__REQUEST__OP_DECRYPT, VHSM__V1__REQUEST__OP_STREAM_FINAL,
};

static void exercise(const struct vp_object *o)
{
	static const CK_ATTRIBUTE_TYPE types[] = { CKA_CLASS, CKA_ID, CKA_LABEL, CKA_EC_POINT, CKA_EC_PARAMS, CKA_MODULUS,
						   CKA_PUBLIC_EXPONENT, CKA_VALUE, CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER,
						   CKA_MODULUS_BITS, CKA_PUBLIC_KEY_INFO, CKA_SIGN };
	uint8_t buf[8][600];
	CK_ATTRIBUTE t[sizeof(types) / sizeof(types[0])];
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		t[i].type = types[i];
		t[i].pValue = i % 2 ? NULL : buf[i % 8];
		t[i].ulValueLen = i % 2 ? 0 : sizeof(buf[0]);
	}
	vp_object_get_attributes(o, t, sizeof(types) / sizeof(types[0]));
}

static void key_objects(const Vhsm__V1__KeyInfo *k, const uint8_t *spki, size_t len)
{
	if (!k)
		return;
	uint32_t usages = 0;
	for (size_t i = 0; i < k->n_usages; i++)
		if (k->usages[i] > 0 && k->usages[i] < 32)
			usages |= VP_USE(k->usages[i]);
	for (CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY; cls <= CKO_SECRET_KEY; cls++) {
		struct vp_object o;
		if (vp_object_init_key(&o, cls, k->type, k->key_id, k->label, usages, k->extractable, k->length_bytes, spki, len) == 0) {
			exercise(&o);
			vp_object_clear(&o);
		}
	}
}

static void reply(const uint8_t *data, size_t size, int op)
{
	Vhsm__V1__Response *resp;
	int code;
	uint64_t id = size ? data[0] : 0;
	if (vp_rpc_decode(data, size, id, op, &resp, &code) != CKR_OK)
		return;
	if (op == VHSM__V1__REQUEST__OP_LIST_PUBLIC_OBJECTS) {
		const Vhsm__V1__PublicObjectList *l = resp->list_public_objects;
		for (size_t i = 0; i < l->n_keys; i++)
			key_objects(l->keys[i]->key, l->keys[i]->spki_der.data, l->keys[i]->spki_der.len);
		for (size_t i = 0; i < l->n_certificates; i++) {
			const Vhsm__V1__CertificateInfo *c = l->certificates[i];
			struct vp_object o;
			if (vp_object_init_certificate(&o, c->cert_id, c->id.data, c->id.len, c->label, c->der.data, c->der.len) == 0) {
				exercise(&o);
				vp_object_clear(&o);
			}
		}
	} else if (op == VHSM__V1__REQUEST__OP_LIST_KEYS) {
		for (size_t i = 0; i < resp->list_keys->n_keys; i++)
			key_objects(resp->list_keys->keys[i], ec_spki, ec_spki_len);
	} else if (op == VHSM__V1__REQUEST__OP_GENERATE_KEY) {
		key_objects(resp->generate_key, ec_spki, ec_spki_len);
	}
	vp_rpc_free(resp);
}

/* A template from the input: (type, length) pairs pointing into the input. */
static void templates(const uint8_t *data, size_t size)
{
	static struct vp_object objs[4];
	static int ready;
	if (!ready) {
		uint32_t all = 0xfffffffe;
		vp_object_init_key(&objs[0], CKO_PUBLIC_KEY, 1, "k", "", all, false, 0, ec_spki, ec_spki_len);
		vp_object_init_key(&objs[1], CKO_PRIVATE_KEY, 7, "r", "l", all, true, 0, rsa_spki, rsa_spki_len);
		vp_object_init_key(&objs[2], CKO_SECRET_KEY, 3, "h", "", all, false, 32, NULL, 0);
		vp_object_init_certificate(&objs[3], "c", (const uint8_t *)"k", 1, "", cert_der, cert_der_len);
		ready = 1;
	}
	CK_ATTRIBUTE t[16];
	size_t n = 0, pos = 0;
	while (n < 16 && pos + 3 <= size) {
		t[n].type = (CK_ATTRIBUTE_TYPE)(data[pos] | (data[pos + 1] & 0x3) << 8);
		size_t len = data[pos + 2];
		pos += 3;
		if (len > size - pos)
			len = size - pos;
		t[n].pValue = len ? (void *)(data + pos) : NULL;
		t[n].ulValueLen = len;
		pos += len;
		n++;
	}
	for (int i = 0; i < 4; i++) {
		vp_object_matches(&objs[i], t, n);
		/* Reads write into a copy: the input is const. */
		uint8_t *copy = malloc(size + 1);
		memcpy(copy, data, size);
		CK_ATTRIBUTE w[16];
		for (size_t k = 0; k < n; k++) {
			w[k] = t[k];
			if (w[k].pValue)
				w[k].pValue = copy + ((const uint8_t *)t[k].pValue - data);
		}
		vp_object_get_attributes(&objs[i], w, n);
		free(copy);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t target = data[0];
	data++;
	size--;
	if (target < 8) {
		reply(data, size, ops[target]);
	} else if (target < 16) {
		struct der_public_key k;
		struct der_certificate c;
		der_parse_spki(data, size, &k);
		der_parse_certificate(data, size, &c);
	} else if (target < 24) {
		struct vp_config cfg;
		char err[128];
		vp_config_parse((const char *)data, size, &cfg, err, sizeof(err));
	} else {
		templates(data, size);
	}
	return 0;
}
