/*
 * Mechanism lists and the operations: sign, verify, digest, encrypt,
 * decrypt (single- and multi-part, and 3.0 message-based AES-GCM), random.
 *
 * The module hashes nothing itself: multi-part input is kept until the
 * final call while it fits one request (VP_DATA_MAX); beyond that it goes to
 * a server digest or MAC stream, and a hash-then-sign mechanism signs the
 * stream's digest as a prehashed request.
 */
#include <stdlib.h>
#include <string.h>

#include "vp.h"
#include "mech.h"
#include "functions.h"

#define ENC_RAW VHSM__V1__SIGNATURE_ENCODING__SIGNATURE_ENCODING_RAW
#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16

/* ---- mechanism information ------------------------------------------------ */

CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pulCount)
		return CKR_ARGUMENTS_BAD;
	if (slotID >= (CK_SLOT_ID)vp->config.nslots)
		return CKR_SLOT_ID_INVALID;
	CK_MECHANISM_TYPE types[VP_MECH_MAX];
	CK_ULONG n = vp_mech_count();
	for (CK_ULONG i = 0; i < n; i++)
		types[i] = vp_mech_at(i)->type;
	return vp_return_list(types, n, pMechanismList, pulCount);
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	if (slotID >= (CK_SLOT_ID)vp->config.nslots)
		return CKR_SLOT_ID_INVALID;
	const struct vp_mech *m = vp_mech_find(type);
	if (!m)
		return CKR_MECHANISM_INVALID;
	pInfo->ulMinKeySize = m->min_key;
	pInfo->ulMaxKeySize = m->max_key;
	pInfo->flags = m->flags | CKF_HW;
	return CKR_OK;
}

/* ---- starting an operation ------------------------------------------------ */

static const struct { CK_MECHANISM_TYPE hash; CK_RSA_PKCS_MGF_TYPE mgf; int len; int pss; } pss_hashes[] = {
	{ CKM_SHA256, CKG_MGF1_SHA256, 32, VHSM__V1__SIGNATURE_ALGORITHM__SIGNATURE_ALGORITHM_RSA_PSS_SHA256 },
	{ CKM_SHA384, CKG_MGF1_SHA384, 48, VHSM__V1__SIGNATURE_ALGORITHM__SIGNATURE_ALGORITHM_RSA_PSS_SHA384 },
	{ CKM_SHA512, CKG_MGF1_SHA512, 64, VHSM__V1__SIGNATURE_ALGORITHM__SIGNATURE_ALGORITHM_RSA_PSS_SHA512 },
};

/* PSS: VHSM signs with MGF1 of the same hash and salt = hash length. */
static CK_RV check_pss(const CK_MECHANISM *m, const struct vp_mech *mech, int *sig_alg, int *hash_len)
{
	if (!m->pParameter || m->ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS))
		return CKR_MECHANISM_PARAM_INVALID;
	const CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;
	for (size_t i = 0; i < sizeof(pss_hashes) / sizeof(pss_hashes[0]); i++) {
		if (p->hashAlg != pss_hashes[i].hash)
			continue;
		if (p->mgf != pss_hashes[i].mgf || p->sLen != (CK_ULONG)pss_hashes[i].len)
			return CKR_MECHANISM_PARAM_INVALID;
		if (!mech->data_is_digest && mech->sig_alg != pss_hashes[i].pss)
			return CKR_MECHANISM_PARAM_INVALID; /* CKM_SHAx_RSA_PKCS_PSS names its hash */
		*sig_alg = pss_hashes[i].pss;
		*hash_len = pss_hashes[i].len;
		return CKR_OK;
	}
	return CKR_MECHANISM_PARAM_INVALID;
}

static CK_RV check_oaep(const CK_MECHANISM *m)
{
	if (!m->pParameter || m->ulParameterLen != sizeof(CK_RSA_PKCS_OAEP_PARAMS))
		return CKR_MECHANISM_PARAM_INVALID;
	const CK_RSA_PKCS_OAEP_PARAMS *p = m->pParameter;
	if (p->hashAlg != CKM_SHA256 || p->mgf != CKG_MGF1_SHA256)
		return CKR_MECHANISM_PARAM_INVALID;
	if (p->source != 0 && p->source != CKZ_DATA_SPECIFIED)
		return CKR_MECHANISM_PARAM_INVALID;
	if (p->ulSourceDataLen != 0)
		return CKR_MECHANISM_PARAM_INVALID; /* VHSM: no label */
	return CKR_OK;
}

static bool class_fits(enum vp_op_kind kind, CK_OBJECT_CLASS cls)
{
	if (cls == CKO_SECRET_KEY)
		return true;
	switch (kind) {
	case VP_OP_SIGN:
	case VP_OP_DECRYPT:
		return cls == CKO_PRIVATE_KEY;
	case VP_OP_VERIFY:
	case VP_OP_ENCRYPT:
		return cls == CKO_PUBLIC_KEY || cls == CKO_PRIVATE_KEY;
	default:
		return false;
	}
}

static int usage_for(enum vp_op_kind kind, CK_OBJECT_CLASS cls)
{
	switch (kind) {
	case VP_OP_SIGN:
		return cls == CKO_SECRET_KEY ? VHSM__V1__KEY_USAGE__KEY_USAGE_MAC : VHSM__V1__KEY_USAGE__KEY_USAGE_SIGN;
	case VP_OP_VERIFY:
		return cls == CKO_SECRET_KEY ? VHSM__V1__KEY_USAGE__KEY_USAGE_MAC : VHSM__V1__KEY_USAGE__KEY_USAGE_VERIFY;
	case VP_OP_ENCRYPT:
	case VP_OP_MSG_ENCRYPT:
		return VHSM__V1__KEY_USAGE__KEY_USAGE_ENCRYPT;
	default:
		return VHSM__V1__KEY_USAGE__KEY_USAGE_DECRYPT;
	}
}

static CK_FLAGS flag_for(enum vp_op_kind kind)
{
	switch (kind) {
	case VP_OP_SIGN:
		return CKF_SIGN;
	case VP_OP_VERIFY:
		return CKF_VERIFY;
	case VP_OP_ENCRYPT:
		return CKF_ENCRYPT;
	case VP_OP_DECRYPT:
		return CKF_DECRYPT;
	case VP_OP_MSG_ENCRYPT:
		return CKF_MESSAGE_ENCRYPT;
	case VP_OP_MSG_DECRYPT:
		return CKF_MESSAGE_DECRYPT;
	default:
		return CKF_DIGEST;
	}
}

static CK_RV op_init(CK_SESSION_HANDLE hSession, enum vp_op_kind kind, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE hKey)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!m)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(hSession);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
		goto out;
	}
	struct vp_op *op = &s->op[kind];
	if (op->active) {
		rv = CKR_OPERATION_ACTIVE;
		goto out;
	}
	struct vp_slot *slot = &vp->slots[s->slot];
	const struct vp_mech *mech = vp_mech_find(m->mechanism);
	if (!mech || !(mech->flags & flag_for(kind))) {
		rv = CKR_MECHANISM_INVALID;
		goto out;
	}
	struct vp_op fresh = { .mech = mech, .hash_len = mech->hash_len };
	if (kind != VP_OP_DIGEST) {
		struct vp_object *key = vp_object_get(slot, hKey);
		if (!key) {
			rv = CKR_KEY_HANDLE_INVALID;
			goto out;
		}
		if (key->cls == CKO_CERTIFICATE || key->key_type != mech->key_type || !class_fits(kind, key->cls)) {
			rv = CKR_KEY_TYPE_INCONSISTENT;
			goto out;
		}
		if (!(key->usages & VP_USE(usage_for(kind, key->cls)))) {
			rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
			goto out;
		}
		strcpy(fresh.key_id, key->key_id);
		if (kind == VP_OP_SIGN || kind == VP_OP_VERIFY)
			fresh.out_len = mech->mac_alg ? (size_t)mech->hash_len : vp_object_signature_len(key);
		else if (key->key_type == CKK_RSA)
			fresh.out_len = key->pub.modulus.len;
	} else {
		fresh.out_len = (size_t)mech->hash_len;
	}
	if (!slot->logged_in) {
		rv = CKR_USER_NOT_LOGGED_IN; /* VHSM does every operation inside a login */
		goto out;
	}

	switch (mech->type) {
	case CKM_RSA_PKCS_PSS:
	case CKM_SHA256_RSA_PKCS_PSS:
	case CKM_SHA384_RSA_PKCS_PSS:
	case CKM_SHA512_RSA_PKCS_PSS: {
		int sig_alg, hash_len;
		rv = check_pss(m, mech, &sig_alg, &hash_len);
		if (rv == CKR_OK && mech->data_is_digest)
			fresh.hash_len = hash_len;
		break;
	}
	case CKM_RSA_PKCS_OAEP:
		rv = check_oaep(m);
		break;
	case CKM_AES_GCM:
		if (kind == VP_OP_MSG_ENCRYPT || kind == VP_OP_MSG_DECRYPT) {
			rv = m->pParameter || m->ulParameterLen ? CKR_MECHANISM_PARAM_INVALID : CKR_OK;
			break;
		}
		if (!m->pParameter || m->ulParameterLen != sizeof(CK_GCM_PARAMS)) {
			rv = CKR_MECHANISM_PARAM_INVALID;
			break;
		}
		const CK_GCM_PARAMS *g = m->pParameter;
		if (!g->pIv || g->ulIvLen != GCM_NONCE_LEN || g->ulTagBits != 8 * GCM_TAG_LEN || g->ulAADLen > VP_DATA_MAX ||
		    (g->ulAADLen && !g->pAAD)) {
			rv = CKR_MECHANISM_PARAM_INVALID;
			break;
		}
		if (kind == VP_OP_ENCRYPT)
			fresh.iv_out = g->pIv; /* the server chooses the nonce; it is returned here */
		else
			memcpy(fresh.iv, g->pIv, GCM_NONCE_LEN);
		if (g->ulAADLen) {
			fresh.aad = malloc(g->ulAADLen);
			if (!fresh.aad) {
				rv = CKR_HOST_MEMORY;
				break;
			}
			memcpy(fresh.aad, g->pAAD, g->ulAADLen);
			fresh.aad_len = g->ulAADLen;
		}
		break;
	default:
		if (m->ulParameterLen != 0)
			rv = CKR_MECHANISM_PARAM_INVALID;
		break;
	}
	if (rv == CKR_OK) {
		fresh.active = true;
		*op = fresh;
	} else {
		vp_op_reset(&fresh);
	}
out:
	pthread_mutex_unlock(&vp->lock);
	return rv;
}

/* ---- the requests ---------------------------------------------------------- */

struct job {
	const struct vp_mech *mech;
	char key_id[VP_KEY_ID_MAX + 1];
	uint8_t session[VP_SESSION_ID_LEN];
	uint64_t epoch;
	CK_SLOT_ID slot;
	int hash_len;
	size_t out_len;
	uint8_t *data; /* the whole input (owned) */
	size_t len;
	bool stream;
	uint32_t stream_id;
	uint8_t iv[GCM_NONCE_LEN];
	uint8_t *aad;
	size_t aad_len;
};

static void job_free(struct job *j)
{
	if (j->data)
		explicit_bzero(j->data, j->len);
	free(j->data);
	free(j->aad);
	explicit_bzero(j->session, sizeof(j->session));
}

static CK_RV call(struct job *j, Vhsm__V1__Request *req, Vhsm__V1__Response **resp)
{
	int code;
	CK_RV rv = vp_rpc(req, j->session, resp, &code);
	if (code == VHSM__V1__ERROR_CODE__ERROR_CODE_SESSION_INVALID) {
		pthread_mutex_lock(&vp->lock);
		vp_slot_lost_login(&vp->slots[j->slot], j->epoch);
		pthread_mutex_unlock(&vp->lock);
	}
	return rv;
}

static int sig_alg_of(const struct job *j)
{
	if (j->mech->type == CKM_RSA_PKCS_PSS)
		return j->hash_len == 32 ? VHSM__V1__SIGNATURE_ALGORITHM__SIGNATURE_ALGORITHM_RSA_PSS_SHA256
		     : j->hash_len == 48 ? VHSM__V1__SIGNATURE_ALGORITHM__SIGNATURE_ALGORITHM_RSA_PSS_SHA384
					 : VHSM__V1__SIGNATURE_ALGORITHM__SIGNATURE_ALGORITHM_RSA_PSS_SHA512;
	return j->mech->sig_alg;
}

/* Finishes a server stream with the last chunk; out gets the digest or MAC. */
static CK_RV stream_final(struct job *j, const uint8_t *expected_mac, size_t expected_len, Vhsm__V1__Response **resp)
{
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__StreamFinalRequest op = VHSM__V1__STREAM_FINAL_REQUEST__INIT;
	op.stream_id = j->stream_id;
	op.data.data = j->data;
	op.data.len = j->len;
	op.expected_mac.data = (uint8_t *)expected_mac;
	op.expected_mac.len = expected_len;
	req.op_case = VHSM__V1__REQUEST__OP_STREAM_FINAL;
	req.stream_final = &op;
	return call(j, &req, resp);
}

/* The data to sign or verify: the input, or the digest of a stream. */
static CK_RV signed_data(struct job *j, bool *prehashed)
{
	*prehashed = j->mech->data_is_digest && j->mech->type == CKM_RSA_PKCS_PSS;
	if (j->mech->data_is_digest && (j->len != (size_t)j->hash_len) && j->mech->type == CKM_RSA_PKCS_PSS)
		return CKR_DATA_LEN_RANGE;
	if (j->mech->type == CKM_ECDSA && (j->len < 1 || j->len > 64))
		return CKR_DATA_LEN_RANGE;
	if (!j->stream)
		return CKR_OK;
	Vhsm__V1__Response *resp;
	CK_RV rv = stream_final(j, NULL, 0, &resp);
	if (rv != CKR_OK)
		return rv;
	const ProtobufCBinaryData *d = &resp->stream_final->output;
	if (d->len != (size_t)j->hash_len) {
		vp_rpc_free(resp);
		return CKR_DEVICE_ERROR;
	}
	explicit_bzero(j->data, j->len);
	free(j->data);
	j->data = malloc(d->len);
	j->len = j->data ? d->len : 0;
	if (j->data)
		memcpy(j->data, d->data, d->len);
	vp_rpc_free(resp);
	*prehashed = true;
	return j->data ? CKR_OK : CKR_HOST_MEMORY;
}

static CK_RV run_sign(struct job *j, uint8_t *out, size_t *out_len)
{
	if (j->mech->mac_alg) {
		Vhsm__V1__Response *resp;
		CK_RV rv;
		const ProtobufCBinaryData *mac;
		if (j->stream) {
			rv = stream_final(j, NULL, 0, &resp);
			mac = rv == CKR_OK ? &resp->stream_final->output : NULL;
		} else {
			Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
			Vhsm__V1__MacRequest op = VHSM__V1__MAC_REQUEST__INIT;
			op.key_id = j->key_id;
			op.algorithm = j->mech->mac_alg;
			op.data.data = j->data;
			op.data.len = j->len;
			req.op_case = VHSM__V1__REQUEST__OP_MAC;
			req.mac = &op;
			rv = call(j, &req, &resp);
			mac = rv == CKR_OK ? &resp->mac->mac : NULL;
		}
		if (rv != CKR_OK)
			return rv;
		if (mac->len != j->out_len)
			rv = CKR_DEVICE_ERROR;
		else
			memcpy(out, mac->data, mac->len), *out_len = mac->len;
		vp_rpc_free(resp);
		return rv;
	}
	bool prehashed;
	CK_RV rv = signed_data(j, &prehashed);
	if (rv != CKR_OK)
		return rv;
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__SignRequest op = VHSM__V1__SIGN_REQUEST__INIT;
	op.key_id = j->key_id;
	op.algorithm = sig_alg_of(j);
	op.data.data = j->data;
	op.data.len = j->len;
	op.encoding = ENC_RAW;
	op.prehashed = prehashed;
	req.op_case = VHSM__V1__REQUEST__OP_SIGN;
	req.sign = &op;
	Vhsm__V1__Response *resp;
	rv = call(j, &req, &resp);
	if (rv != CKR_OK)
		return rv;
	const ProtobufCBinaryData *sig = &resp->sign->signature;
	if (sig->len != j->out_len)
		rv = CKR_DEVICE_ERROR;
	else
		memcpy(out, sig->data, sig->len), *out_len = sig->len;
	vp_rpc_free(resp);
	return rv;
}

static CK_RV run_verify(struct job *j, const uint8_t *sig, size_t sig_len)
{
	if (sig_len != j->out_len)
		return CKR_SIGNATURE_LEN_RANGE;
	Vhsm__V1__Response *resp;
	CK_RV rv;
	bool valid;
	if (j->mech->mac_alg) {
		if (j->stream) {
			rv = stream_final(j, sig, sig_len, &resp);
			valid = rv == CKR_OK && resp->stream_final->valid;
		} else {
			Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
			Vhsm__V1__VerifyMacRequest op = VHSM__V1__VERIFY_MAC_REQUEST__INIT;
			op.key_id = j->key_id;
			op.algorithm = j->mech->mac_alg;
			op.data.data = j->data;
			op.data.len = j->len;
			op.mac.data = (uint8_t *)sig;
			op.mac.len = sig_len;
			req.op_case = VHSM__V1__REQUEST__OP_VERIFY_MAC;
			req.verify_mac = &op;
			rv = call(j, &req, &resp);
			valid = rv == CKR_OK && resp->verify_mac->valid;
		}
	} else {
		bool prehashed;
		rv = signed_data(j, &prehashed);
		if (rv != CKR_OK)
			return rv;
		Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
		Vhsm__V1__VerifyRequest op = VHSM__V1__VERIFY_REQUEST__INIT;
		op.key_id = j->key_id;
		op.algorithm = sig_alg_of(j);
		op.data.data = j->data;
		op.data.len = j->len;
		op.encoding = ENC_RAW;
		op.signature.data = (uint8_t *)sig;
		op.signature.len = sig_len;
		op.prehashed = prehashed;
		req.op_case = VHSM__V1__REQUEST__OP_VERIFY;
		req.verify = &op;
		rv = call(j, &req, &resp);
		valid = rv == CKR_OK && resp->verify->valid;
	}
	if (rv != CKR_OK)
		return rv;
	vp_rpc_free(resp);
	return valid ? CKR_OK : CKR_SIGNATURE_INVALID;
}

static CK_RV run_digest(struct job *j, uint8_t *out, size_t *out_len)
{
	Vhsm__V1__Response *resp;
	CK_RV rv;
	const ProtobufCBinaryData *d;
	if (j->stream) {
		rv = stream_final(j, NULL, 0, &resp);
		d = rv == CKR_OK ? &resp->stream_final->output : NULL;
	} else {
		Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
		Vhsm__V1__DigestRequest op = VHSM__V1__DIGEST_REQUEST__INIT;
		op.algorithm = j->mech->digest_alg;
		op.data.data = j->data;
		op.data.len = j->len;
		req.op_case = VHSM__V1__REQUEST__OP_DIGEST;
		req.digest = &op;
		rv = call(j, &req, &resp);
		d = rv == CKR_OK ? &resp->digest->digest : NULL;
	}
	if (rv != CKR_OK)
		return rv;
	if (d->len != j->out_len)
		rv = CKR_DEVICE_ERROR;
	else
		memcpy(out, d->data, d->len), *out_len = d->len;
	vp_rpc_free(resp);
	return rv;
}

static int encryption_alg(const struct job *j)
{
	return j->mech->type == CKM_AES_GCM ? VHSM__V1__ENCRYPTION_ALGORITHM__ENCRYPTION_ALGORITHM_AES_256_GCM
					    : VHSM__V1__ENCRYPTION_ALGORITHM__ENCRYPTION_ALGORITHM_RSA_OAEP_SHA256;
}

/* AES-GCM: out = ciphertext || tag, nonce to iv_out (or, for the message
 * API, ciphertext to out and the tag to tag_out). */
static CK_RV run_encrypt(struct job *j, uint8_t *out, size_t *out_len, uint8_t *iv_out, uint8_t *tag_out)
{
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__EncryptRequest op = VHSM__V1__ENCRYPT_REQUEST__INIT;
	op.key_id = j->key_id;
	op.algorithm = encryption_alg(j);
	op.plaintext.data = j->data;
	op.plaintext.len = j->len;
	op.aad.data = j->aad;
	op.aad.len = j->aad_len;
	req.op_case = VHSM__V1__REQUEST__OP_ENCRYPT;
	req.encrypt = &op;
	Vhsm__V1__Response *resp;
	CK_RV rv = call(j, &req, &resp);
	if (rv != CKR_OK)
		return rv;
	const Vhsm__V1__EncryptResult *r = resp->encrypt;
	if (j->mech->type == CKM_AES_GCM) {
		if (r->nonce.len != GCM_NONCE_LEN || r->tag.len != GCM_TAG_LEN || r->ciphertext.len != j->len) {
			rv = CKR_DEVICE_ERROR;
		} else {
			memcpy(out, r->ciphertext.data, r->ciphertext.len);
			if (tag_out)
				memcpy(tag_out, r->tag.data, GCM_TAG_LEN);
			else
				memcpy(out + r->ciphertext.len, r->tag.data, GCM_TAG_LEN);
			memcpy(iv_out, r->nonce.data, GCM_NONCE_LEN);
			*out_len = r->ciphertext.len + (tag_out ? 0 : GCM_TAG_LEN);
		}
	} else if (r->ciphertext.len != j->out_len) {
		rv = CKR_DEVICE_ERROR;
	} else {
		memcpy(out, r->ciphertext.data, r->ciphertext.len);
		*out_len = r->ciphertext.len;
	}
	vp_rpc_free(resp);
	return rv;
}

static CK_RV run_decrypt(struct job *j, const uint8_t *tag, uint8_t *out, size_t *out_len)
{
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__DecryptRequest op = VHSM__V1__DECRYPT_REQUEST__INIT;
	op.key_id = j->key_id;
	op.algorithm = encryption_alg(j);
	if (j->mech->type == CKM_AES_GCM) {
		size_t ct_len = tag ? j->len : j->len - GCM_TAG_LEN;
		op.nonce.data = j->iv;
		op.nonce.len = GCM_NONCE_LEN;
		op.ciphertext.data = j->data;
		op.ciphertext.len = ct_len;
		op.tag.data = tag ? (uint8_t *)tag : j->data + ct_len;
		op.tag.len = GCM_TAG_LEN;
		op.aad.data = j->aad;
		op.aad.len = j->aad_len;
	} else {
		op.ciphertext.data = j->data;
		op.ciphertext.len = j->len;
	}
	req.op_case = VHSM__V1__REQUEST__OP_DECRYPT;
	req.decrypt = &op;
	Vhsm__V1__Response *resp;
	CK_RV rv = call(j, &req, &resp);
	if (rv != CKR_OK)
		return rv;
	const ProtobufCBinaryData *p = &resp->decrypt->plaintext;
	if (p->len > *out_len)
		rv = CKR_DEVICE_ERROR;
	else
		memcpy(out, p->data, p->len), *out_len = p->len;
	vp_rpc_free(resp);
	return rv;
}

/* ---- multi-part plumbing --------------------------------------------------- */

/* Copies the op into a job (vp->lock held); the job owns a copy of the input
 * plus extra. */
static CK_RV job_from(struct vp_session *s, struct vp_op *op, const uint8_t *extra, size_t extra_len, struct job *j)
{
	memset(j, 0, sizeof(*j));
	struct vp_slot *slot = &vp->slots[s->slot];
	CK_RV rv = vp_session_id(slot, j->session, &j->epoch);
	if (rv != CKR_OK)
		return rv;
	if (op->stream && op->stream_epoch != j->epoch)
		return CKR_USER_NOT_LOGGED_IN; /* the stream died with its login */
	j->mech = op->mech;
	j->slot = s->slot;
	strcpy(j->key_id, op->key_id);
	j->hash_len = op->hash_len;
	j->out_len = op->out_len;
	j->stream = op->stream;
	j->stream_id = op->stream_id;
	memcpy(j->iv, op->iv, sizeof(j->iv));
	if (op->len + extra_len > VP_DATA_MAX)
		return CKR_DATA_LEN_RANGE;
	j->len = op->len + extra_len;
	j->data = malloc(j->len ? j->len : 1);
	if (!j->data)
		return CKR_HOST_MEMORY;
	if (op->len)
		memcpy(j->data, op->buf, op->len);
	if (extra_len)
		memcpy(j->data + op->len, extra, extra_len);
	if (op->aad_len) {
		j->aad = malloc(op->aad_len);
		if (!j->aad)
			return CKR_HOST_MEMORY;
		memcpy(j->aad, op->aad, op->aad_len);
		j->aad_len = op->aad_len;
	}
	return CKR_OK;
}

static void op_end(CK_SESSION_HANDLE h, enum vp_op_kind kind)
{
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(h);
	if (s)
		vp_op_reset(&s->op[kind]);
	pthread_mutex_unlock(&vp->lock);
}

static CK_RV op_get(CK_SESSION_HANDLE h, enum vp_op_kind kind, struct vp_session **s, struct vp_op **op)
{
	*s = vp_session_get(h);
	if (!*s)
		return CKR_SESSION_HANDLE_INVALID;
	*op = &(*s)->op[kind];
	return (*op)->active ? CKR_OK : CKR_OPERATION_NOT_INITIALIZED;
}

/* Sends a chunk to the op's server stream, opening it first if needed. */
static CK_RV stream_send(struct job *j, enum vp_op_kind kind)
{
	Vhsm__V1__Response *resp;
	CK_RV rv;
	if (!j->stream) {
		Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
		Vhsm__V1__DigestInitRequest dop = VHSM__V1__DIGEST_INIT_REQUEST__INIT;
		Vhsm__V1__MacInitRequest mop = VHSM__V1__MAC_INIT_REQUEST__INIT;
		if (j->mech->mac_alg) {
			mop.key_id = j->key_id;
			mop.algorithm = j->mech->mac_alg;
			req.op_case = VHSM__V1__REQUEST__OP_MAC_INIT;
			req.mac_init = &mop;
		} else {
			dop.algorithm = j->mech->digest_alg;
			req.op_case = VHSM__V1__REQUEST__OP_DIGEST_INIT;
			req.digest_init = &dop;
		}
		rv = call(j, &req, &resp);
		if (rv != CKR_OK)
			return rv;
		j->stream_id = j->mech->mac_alg ? resp->mac_init->stream_id : resp->digest_init->stream_id;
		j->stream = true;
		vp_rpc_free(resp);
	}
	(void)kind;
	Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
	Vhsm__V1__StreamUpdateRequest op = VHSM__V1__STREAM_UPDATE_REQUEST__INIT;
	op.stream_id = j->stream_id;
	op.data.data = j->data;
	op.data.len = j->len;
	req.op_case = VHSM__V1__REQUEST__OP_STREAM_UPDATE;
	req.stream_update = &op;
	rv = call(j, &req, &resp);
	vp_rpc_free(resp);
	return rv;
}

/* C_*Update: keep the input, or stream it when it outgrows one request. */
static CK_RV update(CK_SESSION_HANDLE h, enum vp_op_kind kind, const uint8_t *part, CK_ULONG part_len)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!part && part_len)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s;
	struct vp_op *op;
	rv = op_get(h, kind, &s, &op);
	if (rv != CKR_OK) {
		pthread_mutex_unlock(&vp->lock);
		return rv;
	}
	if (!op->stream && op->len + part_len <= VP_DATA_MAX) {
		uint8_t *grown = realloc(op->buf, op->len + part_len + 1);
		if (!grown) {
			vp_op_reset(op);
			pthread_mutex_unlock(&vp->lock);
			return CKR_HOST_MEMORY;
		}
		op->buf = grown;
		if (part_len)
			memcpy(op->buf + op->len, part, part_len);
		op->len += part_len;
		pthread_mutex_unlock(&vp->lock);
		return CKR_OK;
	}
	bool streams = op->mech->mac_alg || op->mech->digest_alg;
	if (!streams || kind == VP_OP_ENCRYPT || kind == VP_OP_DECRYPT) {
		vp_op_reset(op);
		pthread_mutex_unlock(&vp->lock);
		return CKR_DATA_LEN_RANGE; /* needs the whole input in one request */
	}
	/* Stream what was kept, then the part in chunks. */
	struct job j;
	rv = job_from(s, op, NULL, 0, &j);
	pthread_mutex_unlock(&vp->lock);
	if (rv == CKR_OK && j.len)
		rv = stream_send(&j, kind);
	for (CK_ULONG done = 0; rv == CKR_OK && done < part_len;) {
		size_t n = part_len - done > VP_DATA_MAX ? VP_DATA_MAX : part_len - done;
		explicit_bzero(j.data, j.len);
		free(j.data);
		j.data = malloc(n);
		j.len = j.data ? n : 0;
		if (!j.data) {
			rv = CKR_HOST_MEMORY;
			break;
		}
		memcpy(j.data, part + done, n);
		rv = stream_send(&j, kind);
		done += n;
	}
	pthread_mutex_lock(&vp->lock);
	if (op_get(h, kind, &s, &op) == CKR_OK) {
		if (rv == CKR_OK) {
			if (op->buf)
				explicit_bzero(op->buf, op->len);
			op->len = 0;
			op->stream = true;
			op->stream_id = j.stream_id;
			op->stream_epoch = j.epoch;
		} else {
			vp_op_reset(op);
		}
	} else if (rv == CKR_OK) {
		rv = CKR_SESSION_CLOSED;
	}
	pthread_mutex_unlock(&vp->lock);
	job_free(&j);
	return rv;
}

/* Output sizes for a final call; 0 when it depends on the data. */
static CK_RV expected_len(const struct vp_op *op, enum vp_op_kind kind, size_t in_len, size_t *len)
{
	if (op->mech->type == CKM_AES_GCM) {
		if (kind == VP_OP_ENCRYPT) {
			*len = in_len + GCM_TAG_LEN;
		} else {
			if (in_len < GCM_TAG_LEN)
				return CKR_ENCRYPTED_DATA_LEN_RANGE;
			*len = in_len - GCM_TAG_LEN;
		}
		return CKR_OK;
	}
	*len = op->out_len; /* signatures, digests, RSA (decrypt: an upper bound) */
	return CKR_OK;
}

/*
 * The end of sign, digest, encrypt and decrypt: single-part (data given) or
 * final (data kept by updates). A NULL out or a short buffer only asks for
 * the length and keeps the operation; anything else ends it.
 */
static CK_RV finish(CK_SESSION_HANDLE h, enum vp_op_kind kind, const uint8_t *data, CK_ULONG data_len,
		    uint8_t *out, CK_ULONG_PTR out_len)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!out_len || (!data && data_len))
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s;
	struct vp_op *op;
	rv = op_get(h, kind, &s, &op);
	if (rv != CKR_OK) {
		pthread_mutex_unlock(&vp->lock);
		return rv;
	}
	size_t want;
	rv = expected_len(op, kind, op->len + data_len, &want);
	if (rv != CKR_OK) {
		vp_op_reset(op);
		pthread_mutex_unlock(&vp->lock);
		return rv;
	}
	if (!out) {
		*out_len = want;
		pthread_mutex_unlock(&vp->lock);
		return CKR_OK;
	}
	if (*out_len < want) {
		*out_len = want;
		pthread_mutex_unlock(&vp->lock);
		return CKR_BUFFER_TOO_SMALL;
	}
	struct job j;
	CK_BYTE_PTR iv_out = op->iv_out;
	rv = job_from(s, op, data, data_len, &j);
	pthread_mutex_unlock(&vp->lock);
	size_t n = *out_len;
	if (rv == CKR_OK) {
		switch (kind) {
		case VP_OP_SIGN:
			rv = run_sign(&j, out, &n);
			break;
		case VP_OP_DIGEST:
			rv = run_digest(&j, out, &n);
			break;
		case VP_OP_ENCRYPT:
			rv = run_encrypt(&j, out, &n, iv_out, NULL);
			break;
		default:
			rv = run_decrypt(&j, NULL, out, &n);
			break;
		}
	}
	if (rv == CKR_OK)
		*out_len = n;
	job_free(&j);
	op_end(h, kind);
	return rv;
}

static CK_RV verify_finish(CK_SESSION_HANDLE h, const uint8_t *data, CK_ULONG data_len, const uint8_t *sig, CK_ULONG sig_len)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!sig || (!data && data_len))
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s;
	struct vp_op *op;
	rv = op_get(h, VP_OP_VERIFY, &s, &op);
	if (rv != CKR_OK) {
		pthread_mutex_unlock(&vp->lock);
		return rv;
	}
	struct job j;
	rv = job_from(s, op, data, data_len, &j);
	pthread_mutex_unlock(&vp->lock);
	if (rv == CKR_OK)
		rv = run_verify(&j, sig, sig_len);
	job_free(&j);
	op_end(h, VP_OP_VERIFY);
	return rv;
}

/* A single-part call after an update is a mistake of the caller. */
static CK_RV single_part(CK_SESSION_HANDLE h, enum vp_op_kind kind)
{
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s;
	struct vp_op *op;
	CK_RV rv = op_get(h, kind, &s, &op);
	if (rv == CKR_OK && (op->len || op->stream)) {
		vp_op_reset(op);
		rv = CKR_OPERATION_ACTIVE;
	}
	pthread_mutex_unlock(&vp->lock);
	return rv;
}

/* C_Sign, C_Digest, C_Encrypt, C_Decrypt: one call, all the data. */
static CK_RV one_shot(CK_SESSION_HANDLE h, enum vp_op_kind kind, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV rv = vp_check();
	if (rv == CKR_OK)
		rv = single_part(h, kind);
	return rv == CKR_OK ? finish(h, kind, data, len, out, out_len) : rv;
}

/* AEAD and RSA need the whole input: updates keep it and output nothing. */
static CK_RV update_no_output(CK_SESSION_HANDLE h, enum vp_op_kind kind, CK_BYTE_PTR part, CK_ULONG len, CK_ULONG_PTR out_len)
{
	if (!out_len)
		return CKR_ARGUMENTS_BAD;
	CK_RV rv = update(h, kind, part, len);
	if (rv == CKR_OK)
		*out_len = 0;
	return rv;
}

/* ---- the PKCS#11 functions -------------------------------------------------- */

CK_RV C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	return op_init(h, VP_OP_SIGN, m, k);
}

CK_RV C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	return one_shot(h, VP_OP_SIGN, data, len, sig, sig_len);
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len)
{
	return update(h, VP_OP_SIGN, part, len);
}

CK_RV C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	return finish(h, VP_OP_SIGN, NULL, 0, sig, sig_len);
}

CK_RV C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	return op_init(h, VP_OP_VERIFY, m, k);
}

CK_RV C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	CK_RV rv = vp_check();
	if (rv == CKR_OK)
		rv = single_part(h, VP_OP_VERIFY);
	return rv == CKR_OK ? verify_finish(h, data, len, sig, sig_len) : rv;
}

CK_RV C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len)
{
	return update(h, VP_OP_VERIFY, part, len);
}

CK_RV C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	return verify_finish(h, NULL, 0, sig, sig_len);
}

CK_RV C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m)
{
	return op_init(h, VP_OP_DIGEST, m, CK_INVALID_HANDLE);
}

CK_RV C_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	return one_shot(h, VP_OP_DIGEST, data, len, out, out_len);
}

CK_RV C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len)
{
	return update(h, VP_OP_DIGEST, part, len);
}

CK_RV C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	return finish(h, VP_OP_DIGEST, NULL, 0, out, out_len);
}

CK_RV C_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	return op_init(h, VP_OP_ENCRYPT, m, k);
}

CK_RV C_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	return one_shot(h, VP_OP_ENCRYPT, data, len, out, out_len);
}

CK_RV C_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	(void)out;
	return update_no_output(h, VP_OP_ENCRYPT, part, len, out_len);
}

CK_RV C_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	return finish(h, VP_OP_ENCRYPT, NULL, 0, out, out_len);
}

CK_RV C_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	return op_init(h, VP_OP_DECRYPT, m, k);
}

CK_RV C_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	return one_shot(h, VP_OP_DECRYPT, data, len, out, out_len);
}

CK_RV C_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	(void)out;
	return update_no_output(h, VP_OP_DECRYPT, part, len, out_len);
}

CK_RV C_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	return finish(h, VP_OP_DECRYPT, NULL, 0, out, out_len);
}

/* ---- PKCS#11 3.0 message-based AES-GCM: the token generates the IV ------- */

CK_RV C_MessageEncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	return op_init(h, VP_OP_MSG_ENCRYPT, m, k);
}

CK_RV C_MessageDecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	return op_init(h, VP_OP_MSG_DECRYPT, m, k);
}

static CK_RV gcm_message_params(CK_VOID_PTR p, CK_ULONG len, bool encrypt, const CK_GCM_MESSAGE_PARAMS **out)
{
	if (!p || len != sizeof(CK_GCM_MESSAGE_PARAMS))
		return CKR_MECHANISM_PARAM_INVALID;
	const CK_GCM_MESSAGE_PARAMS *g = p;
	if (!g->pIv || g->ulIvLen != GCM_NONCE_LEN || !g->pTag || g->ulTagBits != 8 * GCM_TAG_LEN)
		return CKR_MECHANISM_PARAM_INVALID;
	if (encrypt && (g->ivGenerator != CKG_GENERATE_RANDOM || g->ulIvFixedBits != 0))
		return CKR_MECHANISM_PARAM_INVALID; /* VHSM always picks a random 96-bit nonce */
	*out = g;
	return CKR_OK;
}

static CK_RV message_crypt(CK_SESSION_HANDLE h, enum vp_op_kind kind, CK_VOID_PTR param, CK_ULONG param_len,
			   CK_BYTE_PTR aad, CK_ULONG aad_len, CK_BYTE_PTR in, CK_ULONG in_len,
			   CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	const CK_GCM_MESSAGE_PARAMS *g;
	if (!out_len || (!in && in_len) || (!aad && aad_len))
		return CKR_ARGUMENTS_BAD;
	rv = gcm_message_params(param, param_len, kind == VP_OP_MSG_ENCRYPT, &g);
	if (rv != CKR_OK)
		return rv;
	if (aad_len > VP_DATA_MAX)
		return CKR_DATA_LEN_RANGE;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s;
	struct vp_op *op;
	rv = op_get(h, kind, &s, &op);
	if (rv != CKR_OK) {
		pthread_mutex_unlock(&vp->lock);
		return rv;
	}
	if (!out) {
		*out_len = in_len;
		pthread_mutex_unlock(&vp->lock);
		return CKR_OK;
	}
	if (*out_len < in_len) {
		*out_len = in_len;
		pthread_mutex_unlock(&vp->lock);
		return CKR_BUFFER_TOO_SMALL;
	}
	struct job j;
	rv = job_from(s, op, in, in_len, &j);
	pthread_mutex_unlock(&vp->lock);
	if (rv == CKR_OK && aad_len) {
		j.aad = malloc(aad_len);
		if (!j.aad)
			rv = CKR_HOST_MEMORY;
		else
			memcpy(j.aad, aad, aad_len), j.aad_len = aad_len;
	}
	size_t n = *out_len;
	if (rv == CKR_OK && kind == VP_OP_MSG_ENCRYPT) {
		rv = run_encrypt(&j, out, &n, g->pIv, g->pTag);
	} else if (rv == CKR_OK) {
		memcpy(j.iv, g->pIv, GCM_NONCE_LEN);
		rv = run_decrypt(&j, g->pTag, out, &n);
	}
	if (rv == CKR_OK)
		*out_len = n;
	job_free(&j);
	return rv; /* the message operation stays active until C_Message*Final */
}

CK_RV C_EncryptMessage(CK_SESSION_HANDLE h, CK_VOID_PTR param, CK_ULONG param_len, CK_BYTE_PTR aad, CK_ULONG aad_len,
		       CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	return message_crypt(h, VP_OP_MSG_ENCRYPT, param, param_len, aad, aad_len, in, in_len, out, out_len);
}

CK_RV C_DecryptMessage(CK_SESSION_HANDLE h, CK_VOID_PTR param, CK_ULONG param_len, CK_BYTE_PTR aad, CK_ULONG aad_len,
		       CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	return message_crypt(h, VP_OP_MSG_DECRYPT, param, param_len, aad, aad_len, in, in_len, out, out_len);
}

static CK_RV message_final(CK_SESSION_HANDLE h, enum vp_op_kind kind)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s;
	struct vp_op *op;
	rv = op_get(h, kind, &s, &op);
	if (rv == CKR_OK)
		vp_op_reset(op);
	pthread_mutex_unlock(&vp->lock);
	return rv;
}

CK_RV C_MessageEncryptFinal(CK_SESSION_HANDLE h)
{
	return message_final(h, VP_OP_MSG_ENCRYPT);
}

CK_RV C_MessageDecryptFinal(CK_SESSION_HANDLE h)
{
	return message_final(h, VP_OP_MSG_DECRYPT);
}

/* ---- random ------------------------------------------------------------------ */

CK_RV C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!out && len)
		return CKR_ARGUMENTS_BAD;
	struct job j = { 0 };
	pthread_mutex_lock(&vp->lock);
	struct vp_session *s = vp_session_get(h);
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else {
		j.slot = s->slot;
		rv = vp_session_id(&vp->slots[s->slot], j.session, &j.epoch);
	}
	pthread_mutex_unlock(&vp->lock);
	for (CK_ULONG done = 0; rv == CKR_OK && done < len;) {
		uint32_t n = len - done > 4096 ? 4096 : (uint32_t)(len - done);
		Vhsm__V1__Request req = VHSM__V1__REQUEST__INIT;
		Vhsm__V1__RandomRequest op = VHSM__V1__RANDOM_REQUEST__INIT;
		op.length = n;
		req.op_case = VHSM__V1__REQUEST__OP_RANDOM;
		req.random = &op;
		Vhsm__V1__Response *resp;
		rv = call(&j, &req, &resp);
		if (rv != CKR_OK)
			break;
		if (resp->random->data.len != n)
			rv = CKR_DEVICE_ERROR;
		else
			memcpy(out + done, resp->random->data.data, n);
		vp_rpc_free(resp);
		done += n;
	}
	job_free(&j);
	return rv;
}
