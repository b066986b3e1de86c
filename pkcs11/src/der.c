#include <string.h>
#include "der.h"

#define TAG_INTEGER 0x02
#define TAG_BIT_STRING 0x03
#define TAG_NULL 0x05
#define TAG_OID 0x06
#define TAG_SEQUENCE 0x30
#define TAG_CONTEXT0 0xa0

const uint8_t der_oid_p256[10] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
const uint8_t der_oid_p384[7] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
const uint8_t der_oid_p521[7] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };
const uint8_t der_oid_secp256k1[7] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a };
const uint8_t der_oid_ed25519[5] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
const uint8_t der_oid_x25519[5] = { 0x06, 0x03, 0x2b, 0x65, 0x6e };
static const uint8_t oid_ec_public_key[9] = { 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const uint8_t oid_rsa_encryption[11] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };

int der_span_eq(struct der_span a, const uint8_t *b, size_t blen)
{
	return a.len == blen && memcmp(a.p, b, blen) == 0;
}

int der_next(struct der_span *in, uint8_t *tag, struct der_span *value, struct der_span *whole)
{
	if (in->len < 2)
		return -1;
	const uint8_t *start = in->p;
	uint8_t t = start[0];
	if ((t & 0x1f) == 0x1f)
		return -1; /* high tag numbers: none in what we read */
	size_t pos = 1, len;
	uint8_t first = start[pos++];
	if (first < 0x80) {
		len = first;
	} else {
		size_t n = first & 0x7f;
		if (n == 0 || n > 4 || in->len - pos < n)
			return -1; /* indefinite, or longer than anything we accept */
		if (start[pos] == 0)
			return -1; /* not minimal */
		len = 0;
		for (size_t i = 0; i < n; i++)
			len = len << 8 | start[pos++];
		if (len < 0x80)
			return -1; /* not minimal */
	}
	if (len > in->len - pos)
		return -1;
	*tag = t;
	value->p = start + pos;
	value->len = len;
	if (whole) {
		whole->p = start;
		whole->len = pos + len;
	}
	in->p += pos + len;
	in->len -= pos + len;
	return 0;
}

static int expect(struct der_span *in, uint8_t want, struct der_span *value, struct der_span *whole)
{
	uint8_t tag;
	if (der_next(in, &tag, value, whole) || tag != want)
		return -1;
	return 0;
}

/* A positive INTEGER as unsigned big-endian without its sign byte. */
static int unsigned_integer(struct der_span *in, struct der_span *out)
{
	struct der_span v;
	if (expect(in, TAG_INTEGER, &v, NULL) || v.len == 0 || (v.p[0] & 0x80))
		return -1;
	if (v.p[0] == 0 && v.len > 1) {
		if (!(v.p[1] & 0x80))
			return -1; /* not minimal */
		v.p++;
		v.len--;
	}
	*out = v;
	return 0;
}

static unsigned long bit_length(struct der_span v)
{
	if (v.len == 0)
		return 0;
	unsigned long bits = (unsigned long)(v.len - 1) * 8;
	for (uint8_t top = v.p[0]; top; top >>= 1)
		bits++;
	return bits;
}

static size_t ec_coordinate_len(struct der_span curve)
{
	if (der_span_eq(curve, der_oid_p256, sizeof(der_oid_p256)) ||
	    der_span_eq(curve, der_oid_secp256k1, sizeof(der_oid_secp256k1)))
		return 32;
	if (der_span_eq(curve, der_oid_p384, sizeof(der_oid_p384)))
		return 48;
	if (der_span_eq(curve, der_oid_p521, sizeof(der_oid_p521)))
		return 66;
	return 0;
}

int der_parse_spki(const uint8_t *spki, size_t len, struct der_public_key *out)
{
	struct der_span in = { spki, len }, seq, alg, bits, oid, params;
	memset(out, 0, sizeof(*out));
	if (expect(&in, TAG_SEQUENCE, &seq, NULL) || in.len != 0)
		return -1;
	if (expect(&seq, TAG_SEQUENCE, &alg, NULL) || expect(&seq, TAG_BIT_STRING, &bits, NULL) || seq.len != 0)
		return -1;
	if (bits.len < 1 || bits.p[0] != 0)
		return -1; /* key bit strings are whole bytes */
	bits.p++;
	bits.len--;
	struct der_span oid_whole;
	if (expect(&alg, TAG_OID, &oid, &oid_whole))
		return -1;
	if (der_span_eq(oid_whole, oid_ec_public_key, sizeof(oid_ec_public_key))) {
		if (expect(&alg, TAG_OID, &oid, &params) || alg.len != 0)
			return -1;
		size_t coord = ec_coordinate_len(params);
		if (!coord || bits.len != 1 + 2 * coord || bits.p[0] != 0x04)
			return -1;
		out->kind = DER_KEY_EC;
		out->curve = params;
		out->point = bits;
		return 0;
	}
	if (der_span_eq(oid_whole, der_oid_ed25519, sizeof(der_oid_ed25519)) ||
	    der_span_eq(oid_whole, der_oid_x25519, sizeof(der_oid_x25519))) {
		if (alg.len != 0 || bits.len != 32)
			return -1;
		out->kind = oid_whole.p[4] == 0x70 ? DER_KEY_ED25519 : DER_KEY_X25519;
		out->curve = oid_whole;
		out->point = bits;
		return 0;
	}
	if (der_span_eq(oid_whole, oid_rsa_encryption, sizeof(oid_rsa_encryption))) {
		struct der_span null_value, rsa;
		if (expect(&alg, TAG_NULL, &null_value, NULL) || null_value.len != 0 || alg.len != 0)
			return -1;
		if (expect(&bits, TAG_SEQUENCE, &rsa, NULL) || bits.len != 0)
			return -1;
		if (unsigned_integer(&rsa, &out->modulus) || unsigned_integer(&rsa, &out->exponent) || rsa.len != 0)
			return -1;
		out->modulus_bits = bit_length(out->modulus);
		if (out->modulus_bits < 1024 || out->modulus_bits > 16384)
			return -1;
		out->kind = DER_KEY_RSA;
		return 0;
	}
	return -1;
}

int der_parse_certificate(const uint8_t *der, size_t len, struct der_certificate *out)
{
	struct der_span in = { der, len }, cert, tbs, v;
	uint8_t tag;
	memset(out, 0, sizeof(*out));
	if (expect(&in, TAG_SEQUENCE, &cert, NULL) || in.len != 0)
		return -1;
	if (expect(&cert, TAG_SEQUENCE, &tbs, NULL))
		return -1;
	struct der_span peek = tbs;
	if (der_next(&peek, &tag, &v, NULL))
		return -1;
	if (tag == TAG_CONTEXT0)
		tbs = peek; /* explicit version */
	if (expect(&tbs, TAG_INTEGER, &v, &out->serial) || v.len == 0)
		return -1;
	if (expect(&tbs, TAG_SEQUENCE, &v, NULL)) /* signature algorithm */
		return -1;
	if (expect(&tbs, TAG_SEQUENCE, &v, &out->issuer))
		return -1;
	if (expect(&tbs, TAG_SEQUENCE, &v, NULL)) /* validity */
		return -1;
	if (expect(&tbs, TAG_SEQUENCE, &v, &out->subject))
		return -1;
	if (expect(&tbs, TAG_SEQUENCE, &v, &out->spki))
		return -1;
	return 0;
}
