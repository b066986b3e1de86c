/*
 * A full session through the module's public interface (dlopen +
 * C_GetInterface), for what pkcs11-tool does not reach: multi-part digests
 * and MACs larger than one request (server streams), AES-GCM both ways
 * (single-part and the 3.0 message API with a token-chosen IV), ECDH,
 * certificates, C_SetPIN, size queries. Run under valgrind by the host
 * tests. Prints TAP.
 *
 *   session MODULE PIN [NEW_PIN]
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11_v3.h"
#include "functions.h"
#include "vectors.h"

static int n_tests, n_failed;
static struct vp_function_list_3_0 *f;
static CK_FUNCTION_LIST *p;

static void ok(int cond, const char *what)
{
	n_tests++;
	n_failed += !cond;
	printf("%sok %d - %s\n", cond ? "" : "not ", n_tests, what);
}

static CK_RV rv_of(CK_RV rv, const char *what)
{
	if (rv != CKR_OK)
		printf("# %s: rv 0x%lx\n", what, (unsigned long)rv);
	return rv;
}

#define CK(call) (rv_of((call), #call) == CKR_OK)

static CK_BBOOL yes = CK_TRUE;

static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *id)
{
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_ID, (void *)id, strlen(id) } };
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	if (p->C_FindObjectsInit(s, t, 2) != CKR_OK)
		return CK_INVALID_HANDLE;
	p->C_FindObjects(s, &h, 1, &n);
	p->C_FindObjectsFinal(s);
	return n == 1 ? h : CK_INVALID_HANDLE;
}

/* Threads sharing the slot's login, each in its own session: requests in
 * flight at once on separate sockets, every reply matched to its caller. */
struct worker {
	CK_OBJECT_HANDLE priv, pub;
	int signed_ok;
};

static void *sign_many(void *arg)
{
	struct worker *w = arg;
	CK_SESSION_HANDLE s;
	if (p->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
		return NULL;
	CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
	for (int i = 0; i < 10; i++) {
		uint8_t msg[32], sig[64];
		memset(msg, (int)(uintptr_t)w + i, sizeof(msg));
		CK_ULONG sl = sizeof(sig);
		if (p->C_SignInit(s, &m, w->priv) == CKR_OK && p->C_Sign(s, msg, sizeof(msg), sig, &sl) == CKR_OK &&
		    p->C_VerifyInit(s, &m, w->pub) == CKR_OK && p->C_Verify(s, msg, sizeof(msg), sig, sl) == CKR_OK)
			w->signed_ok++;
	}
	p->C_CloseSession(s);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	setvbuf(stdout, NULL, _IONBF, 0);
	const char *pin = argv[2];
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		printf("Bail out! %s\n", dlerror());
		return 1;
	}
	CK_RV (*get_interface)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS) = (CK_RV(*)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS))dlsym(lib, "C_GetInterface");
	CK_INTERFACE_PTR iface;
	CK_VERSION v30 = { 3, 0 };
	ok(get_interface && get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &iface, 0) == CKR_OK, "C_GetInterface 3.0");
	f = iface->pFunctionList;
	p = &f->v2;

	ok(CK(p->C_Initialize(NULL)), "C_Initialize");
	CK_SESSION_HANDLE s;
	ok(CK(p->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s)), "C_OpenSession (R/W)");
	uint8_t rnd[16];
	ok(p->C_GenerateRandom(s, rnd, sizeof(rnd)) == CKR_USER_NOT_LOGGED_IN, "random before login: CKR_USER_NOT_LOGGED_IN");
	ok(p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "wrong", 5) == CKR_PIN_INCORRECT, "wrong PIN: CKR_PIN_INCORRECT");
	ok(f->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin), (CK_UTF8CHAR_PTR) "mallory", 7) == CKR_USER_TYPE_INVALID,
	   "C_LoginUser as another user: refused");
	ok(CK(p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin))), "C_Login");
	ok(p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)) == CKR_USER_ALREADY_LOGGED_IN, "again: CKR_USER_ALREADY_LOGGED_IN");
	CK_SESSION_HANDLE s2;
	CK_SESSION_INFO info;
	ok(CK(p->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s2)) && CK(p->C_GetSessionInfo(s2, &info)) &&
	   info.state == CKS_RO_USER_FUNCTIONS, "a second session shares the slot's login");
	ok(CK(p->C_GenerateRandom(s2, rnd, sizeof(rnd))), "C_GenerateRandom");
	ok(p->C_CloseSession(CK_INVALID_HANDLE) == CKR_SESSION_HANDLE_INVALID && CK(p->C_GetSessionInfo(s, &info)),
	   "C_CloseSession(CK_INVALID_HANDLE) closes nothing");

	/* Digest larger than one request: a server stream. */
	size_t big = 100000;
	uint8_t *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 7);
	CK_MECHANISM sha256 = { CKM_SHA256, NULL, 0 };
	uint8_t d1[32], d2[32];
	CK_ULONG n1 = sizeof(d1), n2 = sizeof(d2);
	ok(CK(p->C_DigestInit(s, &sha256)) && CK(p->C_DigestUpdate(s, data, 40000)) && CK(p->C_DigestUpdate(s, data + 40000, big - 40000)) &&
	   CK(p->C_DigestFinal(s, d1, &n1)) && n1 == 32, "multi-part SHA-256 over 100 kB (streamed)");
	ok(CK(p->C_DigestInit(s, &sha256)) && CK(p->C_DigestUpdate(s, data, 1000)) && CK(p->C_DigestUpdate(s, data + 1000, 1000)) &&
	   CK(p->C_DigestFinal(s, d2, &n2)), "multi-part SHA-256 over 2 kB (kept, one request)");
	uint8_t d3[32];
	CK_ULONG n3 = 0;
	ok(CK(p->C_DigestInit(s, &sha256)) && CK(p->C_Digest(s, data, 2000, NULL, &n3)) && n3 == 32, "size query keeps the operation");
	n3 = 10;
	ok(p->C_Digest(s, data, 2000, d3, &n3) == CKR_BUFFER_TOO_SMALL && n3 == 32, "short buffer: CKR_BUFFER_TOO_SMALL");
	n3 = 32;
	ok(CK(p->C_Digest(s, data, 2000, d3, &n3)) && memcmp(d2, d3, 32) == 0, "single-part equals multi-part");
	ok(p->C_DigestFinal(s, d3, &n3) == CKR_OPERATION_NOT_INITIALIZED, "the operation ended");

	/* HMAC key, multi-part MAC over a stream, verify. */
	CK_MECHANISM genkey = { CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 };
	CK_ULONG mac_len = 32;
	CK_ATTRIBUTE hmac_t[] = { { CKA_ID, "unit-hmac", 9 }, { CKA_SIGN, &yes, 1 }, { CKA_VERIFY, &yes, 1 }, { CKA_VALUE_LEN, &mac_len, sizeof(mac_len) } };
	CK_OBJECT_HANDLE hmac;
	ok(CK(p->C_GenerateKey(s, &genkey, hmac_t, 4, &hmac)), "HMAC key generated");
	CK_MECHANISM hmac256 = { CKM_SHA256_HMAC, NULL, 0 };
	uint8_t mac[32], mac2[32];
	CK_ULONG ml = 32, ml2 = 32;
	ok(CK(p->C_SignInit(s, &hmac256, hmac)) && CK(p->C_SignUpdate(s, data, big)) && CK(p->C_SignFinal(s, mac, &ml)) && ml == 32,
	   "multi-part HMAC-SHA256 over 100 kB (streamed)");
	ok(CK(p->C_SignInit(s, &hmac256, hmac)) && CK(p->C_Sign(s, data, 20000, mac2, &ml2)), "single-part HMAC");
	ok(CK(p->C_VerifyInit(s, &hmac256, hmac)) && CK(p->C_VerifyUpdate(s, data, 50000)) && CK(p->C_VerifyUpdate(s, data + 50000, big - 50000)) &&
	   CK(p->C_VerifyFinal(s, mac, ml)), "multi-part HMAC verifies (stream with expected MAC)");
	mac[0] ^= 1;
	ok(CK(p->C_VerifyInit(s, &hmac256, hmac)) && p->C_Verify(s, data, big > 30000 ? 30000 : big, mac, ml) == CKR_SIGNATURE_INVALID,
	   "a wrong MAC: CKR_SIGNATURE_INVALID");

	/* EC key: ECDSA over a stream digest, CKM_ECDSA on a 20-byte digest. */
	CK_MECHANISM ecgen = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	CK_ATTRIBUTE ec_pub[] = { { CKA_EC_PARAMS, (void *)p256, sizeof(p256) }, { CKA_ID, "unit-ec", 7 }, { CKA_VERIFY, &yes, 1 } };
	CK_ATTRIBUTE ec_priv[] = { { CKA_ID, "unit-ec", 7 }, { CKA_SIGN, &yes, 1 }, { CKA_DERIVE, &yes, 1 }, { CKA_LABEL, "unit EC", 7 } };
	CK_OBJECT_HANDLE ecpub, ecpriv;
	ok(CK(p->C_GenerateKeyPair(s, &ecgen, ec_pub, 3, ec_priv, 4, &ecpub, &ecpriv)), "P-256 key pair");
	ok(find_one(s2, CKO_PRIVATE_KEY, "unit-ec") == ecpriv, "{CKO_PRIVATE_KEY, CKA_ID} finds it from the other session");
	CK_MECHANISM ecdsa256 = { CKM_ECDSA_SHA256, NULL, 0 };
	uint8_t sig[64];
	CK_ULONG sl = sizeof(sig);
	ok(CK(p->C_SignInit(s, &ecdsa256, ecpriv)) && CK(p->C_SignUpdate(s, data, big)) && CK(p->C_SignFinal(s, sig, &sl)) && sl == 64,
	   "ECDSA-SHA256 over 100 kB: stream digest, then a prehashed signature");
	ok(CK(p->C_VerifyInit(s, &ecdsa256, ecpub)) && CK(p->C_Verify(s, data, 20000, sig, sl)) == 0, "(a signature over other data does not verify)");
	ok(CK(p->C_VerifyInit(s, &ecdsa256, ecpub)) && CK(p->C_VerifyUpdate(s, data, big)) && CK(p->C_VerifyFinal(s, sig, sl)),
	   "multi-part verify over the same 100 kB");
	CK_MECHANISM ecdsa = { CKM_ECDSA, NULL, 0 };
	sl = sizeof(sig);
	ok(CK(p->C_SignInit(s, &ecdsa, ecpriv)) && CK(p->C_Sign(s, d1, 20, sig, &sl)) && sl == 64, "CKM_ECDSA over a 20-byte (SHA-1 sized) digest");
	ok(CK(p->C_VerifyInit(s, &ecdsa, ecpub)) && CK(p->C_Verify(s, d1, 20, sig, sl)), "and it verifies");
	ok(CK(p->C_VerifyInit(s, &ecdsa, ecpub)) && p->C_Verify(s, d1, 20, sig, 63) == CKR_SIGNATURE_LEN_RANGE, "short signature: CKR_SIGNATURE_LEN_RANGE");
	CK_MECHANISM pss = { CKM_SHA256_RSA_PKCS_PSS, NULL, 0 };
	ok(p->C_SignInit(s, &pss, ecpriv) == CKR_MECHANISM_PARAM_INVALID || p->C_SignInit(s, &pss, ecpriv) == CKR_KEY_TYPE_INCONSISTENT,
	   "RSA mechanism on an EC key: refused");

	struct worker workers[8];
	pthread_t threads[8];
	for (int i = 0; i < 8; i++) {
		workers[i] = (struct worker){ ecpriv, ecpub, 0 };
		pthread_create(&threads[i], NULL, sign_many, &workers[i]);
	}
	int all = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(threads[i], NULL);
		all += workers[i].signed_ok;
	}
	ok(all == 80, "8 threads x 10 sign+verify, each in its own session, concurrently");

	/* ECDH with a second key pair's point. */
	CK_ATTRIBUTE ec2_pub[] = { { CKA_EC_PARAMS, (void *)p256, sizeof(p256) }, { CKA_ID, "unit-ec2", 8 } };
	CK_ATTRIBUTE ec2_priv[] = { { CKA_ID, "unit-ec2", 8 }, { CKA_DERIVE, &yes, 1 } };
	CK_OBJECT_HANDLE ec2pub, ec2priv;
	uint8_t point[80];
	CK_ATTRIBUTE get_point = { CKA_EC_POINT, point, sizeof(point) };
	ok(CK(p->C_GenerateKeyPair(s, &ecgen, ec2_pub, 2, ec2_priv, 2, &ec2pub, &ec2priv)) && CK(p->C_GetAttributeValue(s, ec2pub, &get_point, 1)),
	   "second P-256 key pair, its CKA_EC_POINT");
	CK_ECDH1_DERIVE_PARAMS ecdh = { CKD_NULL, 0, NULL, get_point.ulValueLen, point };
	CK_MECHANISM derive = { CKM_ECDH1_DERIVE, &ecdh, sizeof(ecdh) };
	CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
	CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
	CK_ATTRIBUTE dt[] = { { CKA_CLASS, &secret, sizeof(secret) }, { CKA_KEY_TYPE, &generic, sizeof(generic) }, { CKA_ID, "unit-shared", 11 } };
	CK_OBJECT_HANDLE shared;
	ok(CK(p->C_DeriveKey(s, &derive, ecpriv, dt, 3, &shared)), "CKM_ECDH1_DERIVE into a new secret key");
	CK_ULONG shared_len = 0;
	uint8_t shared_value[64];
	CK_ATTRIBUTE sa[] = { { CKA_VALUE_LEN, &shared_len, sizeof(shared_len) }, { CKA_VALUE, shared_value, sizeof(shared_value) } };
	ok(p->C_GetAttributeValue(s, shared, sa, 2) == CKR_ATTRIBUTE_SENSITIVE && shared_len == 32 && sa[1].ulValueLen == CK_UNAVAILABLE_INFORMATION,
	   "the shared secret: 32 bytes, CKA_VALUE sensitive");

	/* AES-GCM: single-part with the token's IV, and the 3.0 message API. */
	CK_MECHANISM aesgen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_ULONG aes_len = 32;
	CK_ATTRIBUTE aes_t[] = { { CKA_ID, "unit-aes", 8 }, { CKA_VALUE_LEN, &aes_len, sizeof(aes_len) }, { CKA_ENCRYPT, &yes, 1 }, { CKA_DECRYPT, &yes, 1 } };
	CK_OBJECT_HANDLE aes;
	ok(CK(p->C_GenerateKey(s, &aesgen, aes_t, 4, &aes)), "AES-256 key");
	uint8_t iv[12] = { 0 }, aad[5] = "head";
	CK_GCM_PARAMS gcm = { iv, sizeof(iv), 96, aad, 4, 128 };
	CK_MECHANISM gcm_m = { CKM_AES_GCM, &gcm, sizeof(gcm) };
	uint8_t ct[64], pt[64];
	CK_ULONG ctl = 0, ptl = sizeof(pt);
	ok(CK(p->C_EncryptInit(s, &gcm_m, aes)) && CK(p->C_Encrypt(s, (CK_BYTE_PTR) "attack at dawn", 14, NULL, &ctl)) && ctl == 30,
	   "GCM size query: plaintext + 16");
	ok(CK(p->C_Encrypt(s, (CK_BYTE_PTR) "attack at dawn", 14, ct, &ctl)) && ctl == 30, "C_Encrypt: ciphertext || tag");
	int iv_set = 0;
	for (size_t i = 0; i < sizeof(iv); i++)
		iv_set |= iv[i];
	ok(iv_set, "the server's nonce came back in CK_GCM_PARAMS.pIv");
	ok(CK(p->C_DecryptInit(s, &gcm_m, aes)) && CK(p->C_Decrypt(s, ct, ctl, pt, &ptl)) && ptl == 14 && memcmp(pt, "attack at dawn", 14) == 0,
	   "C_Decrypt with that IV");
	ct[0] ^= 1;
	ptl = sizeof(pt);
	ok(CK(p->C_DecryptInit(s, &gcm_m, aes)) && p->C_Decrypt(s, ct, ctl, pt, &ptl) == CKR_ENCRYPTED_DATA_INVALID, "tampered: CKR_ENCRYPTED_DATA_INVALID");
	CK_MECHANISM gcm_msg = { CKM_AES_GCM, NULL, 0 };
	uint8_t miv[12] = { 0 }, tag[16];
	CK_GCM_MESSAGE_PARAMS mp = { miv, 12, 0, CKG_GENERATE_RANDOM, tag, 128 };
	ctl = sizeof(ct);
	ok(CK(f->C_MessageEncryptInit(s, &gcm_msg, aes)) && CK(f->C_EncryptMessage(s, &mp, sizeof(mp), aad, 4, (CK_BYTE_PTR) "message api", 11, ct, &ctl)) &&
	   ctl == 11 && CK(f->C_MessageEncryptFinal(s)), "C_EncryptMessage: token-generated IV and tag returned in the parameters");
	CK_GCM_MESSAGE_PARAMS dp = { miv, 12, 0, CKG_NO_GENERATE, tag, 128 };
	ptl = sizeof(pt);
	ok(CK(f->C_MessageDecryptInit(s, &gcm_msg, aes)) && CK(f->C_DecryptMessage(s, &dp, sizeof(dp), aad, 4, ct, ctl, pt, &ptl)) && ptl == 11 &&
	   memcmp(pt, "message api", 11) == 0 && CK(f->C_MessageDecryptFinal(s)), "C_DecryptMessage");

	/* Certificates next to a key. */
	CK_OBJECT_CLASS cert_class = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE x509 = CKC_X_509;
	CK_ATTRIBUTE ct_t[] = { { CKA_CLASS, &cert_class, sizeof(cert_class) }, { CKA_CERTIFICATE_TYPE, &x509, sizeof(x509) }, { CKA_TOKEN, &yes, 1 },
				{ CKA_ID, "unit-ec", 7 }, { CKA_LABEL, "unit cert", 9 }, { CKA_VALUE, (void *)cert_der, cert_der_len } };
	CK_OBJECT_HANDLE cert;
	ok(CK(p->C_CreateObject(s, ct_t, 6, &cert)), "C_CreateObject(CKO_CERTIFICATE)");
	ok(find_one(s2, CKO_CERTIFICATE, "unit-ec") == cert, "found by CKA_ID");
	CK_ATTRIBUTE subject = { CKA_SUBJECT, NULL, 0 };
	ok(CK(p->C_GetAttributeValue(s, cert, &subject, 1)) && subject.ulValueLen > 10, "CKA_SUBJECT from the DER");
	ok(CK(p->C_DestroyObject(s, cert)) && find_one(s2, CKO_CERTIFICATE, "unit-ec") == CK_INVALID_HANDLE, "C_DestroyObject(certificate)");

	/* Clean up the keys. */
	ok(CK(p->C_DestroyObject(s, ecpriv)) && find_one(s2, CKO_PUBLIC_KEY, "unit-ec") == CK_INVALID_HANDLE, "destroying a private key removes its pair");
	ok(CK(p->C_DestroyObject(s, ec2priv)) && CK(p->C_DestroyObject(s, shared)) && CK(p->C_DestroyObject(s, hmac)) && CK(p->C_DestroyObject(s, aes)),
	   "the other keys destroyed");

	if (argc > 3) {
		const char *new_pin = argv[3];
		ok(p->C_SetPIN(s, (CK_UTF8CHAR_PTR) "wrong", 5, (CK_UTF8CHAR_PTR)new_pin, strlen(new_pin)) == CKR_PIN_INCORRECT, "C_SetPIN with a wrong old PIN");
		ok(CK(p->C_SetPIN(s, (CK_UTF8CHAR_PTR)pin, strlen(pin), (CK_UTF8CHAR_PTR)new_pin, strlen(new_pin))), "C_SetPIN");
		ok(CK(p->C_Logout(s)) && p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)) == CKR_PIN_INCORRECT, "the old PIN is gone");
		ok(CK(p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)new_pin, strlen(new_pin))), "the new PIN logs in");
		ok(CK(p->C_SetPIN(s, (CK_UTF8CHAR_PTR)new_pin, strlen(new_pin), (CK_UTF8CHAR_PTR)pin, strlen(pin))), "and changes it back");
	}
	ok(CK(p->C_Logout(s)) && CK(p->C_GetSessionInfo(s2, &info)) && info.state == CKS_RO_PUBLIC_SESSION, "C_Logout: every session of the slot is public");
	ok(p->C_GenerateRandom(s2, rnd, sizeof(rnd)) == CKR_USER_NOT_LOGGED_IN, "and the VHSM session is gone");
	if (argc > 3) {
		const char *new_pin = argv[3];
		ok(CK(p->C_SetPIN(s, (CK_UTF8CHAR_PTR)pin, strlen(pin), (CK_UTF8CHAR_PTR)new_pin, strlen(new_pin))) &&
		   CK(p->C_GetSessionInfo(s, &info)) && info.state == CKS_RW_PUBLIC_SESSION, "C_SetPIN in a R/W public session, still public after");
		ok(p->C_SetPIN(s2, (CK_UTF8CHAR_PTR)new_pin, strlen(new_pin), (CK_UTF8CHAR_PTR)pin, strlen(pin)) == CKR_SESSION_READ_ONLY,
		   "C_SetPIN in a read-only session: CKR_SESSION_READ_ONLY");
		ok(CK(p->C_SetPIN(s, (CK_UTF8CHAR_PTR)new_pin, strlen(new_pin), (CK_UTF8CHAR_PTR)pin, strlen(pin))), "and back");
	}
	ok(CK(p->C_CloseAllSessions(0)) && p->C_GetSessionInfo(s, &info) == CKR_SESSION_HANDLE_INVALID, "C_CloseAllSessions");
	ok(CK(p->C_Finalize(NULL)), "C_Finalize");
	free(data);
	dlclose(lib);
	printf("1..%d\n", n_tests);
	return n_failed ? 1 : 0;
}
