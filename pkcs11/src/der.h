/*
 * A tiny strict DER reader for what the module needs to read: the
 * SubjectPublicKeyInfo of each key and the names and serial number of a
 * certificate. Never trusts its input: definite minimal lengths only, low
 * tag numbers only, every length checked against what is left.
 */
#ifndef VP_DER_H
#define VP_DER_H

#include <stddef.h>
#include <stdint.h>

struct der_span {
	const uint8_t *p;
	size_t len;
};

/* Reads one TLV from *in. On success advances *in and returns 0. */
int der_next(struct der_span *in, uint8_t *tag, struct der_span *value, struct der_span *whole);

enum der_key_kind { DER_KEY_EC, DER_KEY_RSA, DER_KEY_ED25519, DER_KEY_X25519 };

struct der_public_key {
	enum der_key_kind kind;
	struct der_span curve;    /* EC/Edwards/Montgomery: the curve OID, DER (tag included) */
	struct der_span point;    /* EC: 04||X||Y; Ed25519/X25519: the 32 key bytes */
	struct der_span modulus;  /* RSA: big-endian, no leading zero byte */
	struct der_span exponent; /* RSA: big-endian, no leading zero byte */
	unsigned long modulus_bits;
};

/* Parses an SPKI DER; all spans point into spki. 0, or -1 if not one of ours. */
int der_parse_spki(const uint8_t *spki, size_t len, struct der_public_key *out);

struct der_certificate {
	struct der_span serial;  /* the INTEGER, DER (tag included): CKA_SERIAL_NUMBER */
	struct der_span issuer;  /* Name, DER */
	struct der_span subject; /* Name, DER */
	struct der_span spki;    /* SubjectPublicKeyInfo, DER */
};

int der_parse_certificate(const uint8_t *der, size_t len, struct der_certificate *out);

/* DER OIDs (tag and length included) of the curves VHSM has. */
extern const uint8_t der_oid_p256[10], der_oid_p384[7], der_oid_p521[7], der_oid_secp256k1[7];
extern const uint8_t der_oid_ed25519[5], der_oid_x25519[5];

int der_span_eq(struct der_span a, const uint8_t *b, size_t blen);

#endif
