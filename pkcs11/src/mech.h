/* The mechanisms the module offers and how each maps to a VHSM request. */
#ifndef VP_MECH_H
#define VP_MECH_H

#include <stdbool.h>
#include "pkcs11_v3.h"

struct vp_mech {
	CK_MECHANISM_TYPE type;
	CK_ULONG min_key, max_key;
	CK_FLAGS flags;
	CK_KEY_TYPE key_type;  /* the key type it needs ((CK_KEY_TYPE)-1: none) */
	int sig_alg;           /* VHSM SignatureAlgorithm */
	int mac_alg;           /* VHSM MacAlgorithm */
	int digest_alg;        /* VHSM DigestAlgorithm the data is hashed with */
	int hash_len;          /* of digest_alg */
	bool data_is_digest;   /* the caller hashed (CKM_ECDSA, CKM_RSA_PKCS_PSS) */
};

#define VP_MECH_MAX 64

const struct vp_mech *vp_mech_find(CK_MECHANISM_TYPE type);
size_t vp_mech_count(void);
const struct vp_mech *vp_mech_at(size_t i);

#endif
