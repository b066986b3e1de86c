/*
 * Unit tests of the module's pure parts (DER reader, configuration,
 * objects and attributes, reply decoding, error mapping) and of its entry
 * points without a server: initialisation rules, interfaces, fork.
 * Prints TAP; test/host/pkcs11-unit.test.ts turns each line into a tap
 * assertion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "vp.h"
#include "der.h"
#include "config.h"
#include "object.h"
#include "rpc.h"
#include "functions.h"
#include "vectors.h"

static int n_tests, n_failed;

static void ok(int cond, const char *what)
{
	n_tests++;
	if (!cond)
		n_failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", n_tests, what);
}

#define P256 VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P256

static void test_der(void)
{
	struct der_public_key k;
	ok(der_parse_spki(ec_spki, ec_spki_len, &k) == 0 && k.kind == DER_KEY_EC, "P-256 SPKI parses");
	ok(k.point.len == 65 && k.point.p[0] == 0x04, "P-256 point is 04||X||Y");
	ok(der_span_eq(k.curve, der_oid_p256, sizeof(der_oid_p256)), "P-256 curve OID");
	ok(der_parse_spki(ed_spki, ed_spki_len, &k) == 0 && k.kind == DER_KEY_ED25519 && k.point.len == 32, "Ed25519 SPKI parses to 32 bytes");
	ok(der_parse_spki(rsa_spki, rsa_spki_len, &k) == 0 && k.kind == DER_KEY_RSA && k.modulus_bits == 2048, "RSA-2048 SPKI: 2048-bit modulus");
	ok(k.modulus.len == 256 && k.modulus.p[0] != 0, "RSA modulus without its sign byte");
	ok(k.exponent.len == 3 && k.exponent.p[0] == 1 && k.exponent.p[2] == 1, "RSA exponent 65537");

	int prefixes_rejected = 1;
	for (unsigned int n = 0; n < rsa_spki_len; n++)
		if (der_parse_spki(rsa_spki, n, &k) == 0)
			prefixes_rejected = 0;
	ok(prefixes_rejected, "every truncation of an SPKI is rejected");
	uint8_t longer[128];
	memcpy(longer, ec_spki, ec_spki_len);
	longer[ec_spki_len] = 0;
	ok(der_parse_spki(longer, ec_spki_len + 1, &k) != 0, "trailing bytes are rejected");
	/* 0x30 0x81 0x59: a long form for a length that fits the short one. */
	uint8_t nonminimal[130] = { 0x30, 0x81, 0x59 };
	memcpy(nonminimal + 3, ec_spki + 2, ec_spki_len - 2);
	ok(der_parse_spki(nonminimal, ec_spki_len + 1, &k) != 0, "non-minimal lengths are rejected");
	uint8_t indefinite[] = { 0x30, 0x80, 0x00, 0x00 };
	ok(der_parse_spki(indefinite, sizeof(indefinite), &k) != 0, "indefinite lengths are rejected");
	uint8_t bad_point[128];
	memcpy(bad_point, ec_spki, ec_spki_len);
	bad_point[26] = 0x02; /* compressed point marker */
	ok(der_parse_spki(bad_point, ec_spki_len, &k) != 0, "an EC point that is not uncompressed is rejected");

	struct der_certificate c;
	ok(der_parse_certificate(cert_der, cert_der_len, &c) == 0, "certificate parses");
	ok(c.serial.len > 2 && c.serial.p[0] == 0x02, "CKA_SERIAL_NUMBER is the DER INTEGER");
	ok(c.subject.len == c.issuer.len && memcmp(c.subject.p, c.issuer.p, c.subject.len) == 0 && c.subject.p[0] == 0x30,
	   "self-signed: subject == issuer, a DER Name");
	ok(c.spki.len == ec_spki_len, "certificate's SPKI found");
	ok(der_parse_certificate(cert_der, cert_der_len - 1, &c) != 0, "truncated certificate is rejected");
}

static void test_config(void)
{
	struct vp_config cfg;
	char err[128];
	const char *good = "# slots\n\nslot alice\nslot bob hide-types=ed25519,rsa-2048 only-ids=ssh-key,tls.key\r\n";
	ok(vp_config_parse(good, strlen(good), &cfg, err, sizeof(err)) == 0 && cfg.nslots == 2, "valid configuration: two slots");
	ok(strcmp(cfg.slots[1].user, "bob") == 0 && cfg.slots[1].n_only_ids == 2 &&
	   (cfg.slots[1].hidden_types & (1u << VHSM__V1__KEY_TYPE__KEY_TYPE_ED25519)) &&
	   (cfg.slots[1].hidden_types & (1u << VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_2048)),
	   "options parsed");
	const char *bad[] = { "slots alice\n", "slot\n", "slot al ice=x\n", "slot alice\nslot alice\n", "slot alice hide-types=dsa\n",
			      "slot alice only-ids=-x\n", "slot alice colour=blue\n", "slot ../etc\n", "slot alice hide-types=\n" };
	int all_refused = 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vp_config_parse(bad[i], strlen(bad[i]), &cfg, err, sizeof(err)) == 0)
			all_refused = 0;
	ok(all_refused, "malformed lines, duplicate users, unknown options are refused");
	char nul[] = "slot alice\0x\n";
	ok(vp_config_parse(nul, sizeof(nul) - 1, &cfg, err, sizeof(err)) != 0, "a NUL byte is refused");
	char many[2048] = "";
	for (int i = 0; i < VP_MAX_SLOTS + 1; i++)
		sprintf(many + strlen(many), "slot u%d\n", i);
	ok(vp_config_parse(many, strlen(many), &cfg, err, sizeof(err)) != 0, "more than 16 slots is refused");
}

static uint32_t use(int a, int b)
{
	return VP_USE(a) | VP_USE(b);
}

static void test_objects(void)
{
	struct vp_object pub, priv, sec, rsa, cert;
	uint32_t sv = use(VHSM__V1__KEY_USAGE__KEY_USAGE_SIGN, VHSM__V1__KEY_USAGE__KEY_USAGE_VERIFY);
	ok(vp_object_init_key(&pub, CKO_PUBLIC_KEY, P256, "k1", "", sv, false, 0, ec_spki, ec_spki_len) == 0, "P-256 public key object");
	ok(vp_object_init_key(&priv, CKO_PRIVATE_KEY, P256, "k1", "my key", sv, false, 0, ec_spki, ec_spki_len) == 0, "P-256 private key object");
	ok(vp_object_init_key(&sec, CKO_SECRET_KEY, VHSM__V1__KEY_TYPE__KEY_TYPE_HMAC, "mac", "", VP_USE(VHSM__V1__KEY_USAGE__KEY_USAGE_MAC), false, 32, NULL, 0) == 0,
	   "HMAC secret key object");
	ok(vp_object_init_key(&rsa, CKO_PUBLIC_KEY, VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_2048, "r", "", sv, false, 0, rsa_spki, rsa_spki_len) == 0, "RSA public key object");
	struct vp_object tmp;
	ok(vp_object_init_key(&tmp, CKO_PUBLIC_KEY, VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P384, "k", "", sv, false, 0, ec_spki, ec_spki_len) != 0,
	   "an SPKI that does not fit the key type is refused");
	ok(vp_object_init_key(&tmp, CKO_PUBLIC_KEY, P256, "bad id!", "", sv, false, 0, ec_spki, ec_spki_len) != 0, "an invalid key id is refused");
	ok(vp_object_init_key(&tmp, CKO_PUBLIC_KEY, P256, "k", "tab\there", sv, false, 0, ec_spki, ec_spki_len) != 0, "a label with control characters is refused");
	ok(vp_object_init_certificate(&cert, "0123456789abcdef0123456789abcdef", (const uint8_t *)"k1", 2, "cert", cert_der, cert_der_len) == 0,
	   "certificate object");

	CK_ATTRIBUTE size[] = { { CKA_EC_POINT, NULL, 0 }, { CKA_ID, NULL, 0 }, { CKA_LABEL, NULL, 0 } };
	ok(vp_object_get_attributes(&pub, size, 3) == CKR_OK && size[0].ulValueLen == 67 && size[1].ulValueLen == 2 && size[2].ulValueLen == 2,
	   "size query: EC point 67 bytes (OCTET STRING), CKA_ID = key id, label falls back to the id");
	uint8_t point[67];
	CK_ATTRIBUTE get_point = { CKA_EC_POINT, point, sizeof(point) };
	ok(vp_object_get_attributes(&pub, &get_point, 1) == CKR_OK && point[0] == 0x04 && point[1] == 65 && point[2] == 0x04,
	   "CKA_EC_POINT = DER OCTET STRING around 04||X||Y");
	uint8_t small[10];
	CK_ATTRIBUTE too_small = { CKA_EC_POINT, small, sizeof(small) };
	ok(vp_object_get_attributes(&pub, &too_small, 1) == CKR_BUFFER_TOO_SMALL && too_small.ulValueLen == CK_UNAVAILABLE_INFORMATION,
	   "short buffer: CKR_BUFFER_TOO_SMALL, length unavailable");

	CK_BBOOL sign = 0, sensitive = 0;
	uint8_t value[64];
	CK_OBJECT_CLASS cls = 0;
	CK_ATTRIBUTE mixed[] = { { CKA_VALUE, value, sizeof(value) }, { CKA_SIGN, &sign, sizeof(sign) }, { CKA_MODULUS, value, sizeof(value) },
				 { CKA_SENSITIVE, &sensitive, sizeof(sensitive) }, { CKA_CLASS, &cls, sizeof(cls) } };
	CK_RV rv = vp_object_get_attributes(&priv, mixed, 5);
	ok(rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID, "private key: CKA_VALUE fails the template");
	ok(mixed[0].ulValueLen == CK_UNAVAILABLE_INFORMATION && mixed[2].ulValueLen == CK_UNAVAILABLE_INFORMATION,
	   "CKA_VALUE (sensitive) and CKA_MODULUS (not an EC attribute) are unavailable");
	ok(sign == CK_TRUE && sensitive == CK_TRUE && cls == CKO_PRIVATE_KEY, "...and every other attribute is still filled");
	CK_ATTRIBUTE only_value = { CKA_VALUE, value, sizeof(value) };
	ok(vp_object_get_attributes(&priv, &only_value, 1) == CKR_ATTRIBUTE_SENSITIVE, "EC private CKA_VALUE: CKR_ATTRIBUTE_SENSITIVE");
	CK_ATTRIBUTE sec_value = { CKA_VALUE, value, sizeof(value) };
	ok(vp_object_get_attributes(&sec, &sec_value, 1) == CKR_ATTRIBUTE_SENSITIVE, "secret CKA_VALUE: CKR_ATTRIBUTE_SENSITIVE");
	CK_ATTRIBUTE point_on_priv = { CKA_EC_POINT, NULL, 0 };
	ok(vp_object_get_attributes(&priv, &point_on_priv, 1) == CKR_ATTRIBUTE_TYPE_INVALID, "private key has no CKA_EC_POINT");
	CK_ULONG value_len = 0;
	CK_BBOOL mac_sign = 0;
	CK_ATTRIBUTE sec_attrs[] = { { CKA_VALUE_LEN, &value_len, sizeof(value_len) }, { CKA_SIGN, &mac_sign, 1 } };
	ok(vp_object_get_attributes(&sec, sec_attrs, 2) == CKR_OK && value_len == 32 && mac_sign, "HMAC key: CKA_VALUE_LEN 32, CKA_SIGN from the MAC usage");
	CK_ULONG bits = 0;
	CK_ATTRIBUTE rsa_attrs[] = { { CKA_MODULUS_BITS, &bits, sizeof(bits) }, { CKA_MODULUS, NULL, 0 }, { CKA_PUBLIC_EXPONENT, NULL, 0 } };
	ok(vp_object_get_attributes(&rsa, rsa_attrs, 3) == CKR_OK && bits == 2048 && rsa_attrs[1].ulValueLen == 256 && rsa_attrs[2].ulValueLen == 3,
	   "RSA public: modulus bits, modulus, exponent");
	CK_ATTRIBUTE cert_attrs[] = { { CKA_SUBJECT, NULL, 0 }, { CKA_ISSUER, NULL, 0 }, { CKA_SERIAL_NUMBER, NULL, 0 }, { CKA_VALUE, NULL, 0 } };
	ok(vp_object_get_attributes(&cert, cert_attrs, 4) == CKR_OK && cert_attrs[3].ulValueLen == cert_der_len && cert_attrs[0].ulValueLen > 0,
	   "certificate: subject, issuer, serial, value");

	CK_OBJECT_CLASS want_priv = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE find[] = { { CKA_CLASS, &want_priv, sizeof(want_priv) }, { CKA_ID, "k1", 2 } };
	ok(vp_object_matches(&priv, find, 2) && !vp_object_matches(&pub, find, 2), "{CKA_CLASS, CKA_ID} finds the private half only");
	CK_ATTRIBUTE find_value[] = { { CKA_VALUE, "x", 1 } };
	ok(!vp_object_matches(&sec, find_value, 1), "a sensitive attribute never matches");
	ok(vp_object_matches(&pub, NULL, 0), "the empty template matches everything");

	struct vp_slot_config filter = { .hidden_types = 1u << P256 };
	ok(vp_object_hidden(&pub, &filter) && !vp_object_hidden(&rsa, &filter), "hide-types hides that key type only");
	struct vp_slot_config only = { .n_only_ids = 1 };
	strcpy(only.only_ids[0], "r");
	ok(vp_object_hidden(&pub, &only) && !vp_object_hidden(&rsa, &only), "only-ids shows the listed keys only");

	vp_object_clear(&pub);
	vp_object_clear(&priv);
	vp_object_clear(&sec);
	vp_object_clear(&rsa);
	vp_object_clear(&cert);
}

static size_t pack_response(Vhsm__V1__Response *r, uint8_t *buf)
{
	return vhsm__v1__response__pack(r, buf);
}

static void test_decode(void)
{
	uint8_t buf[512];
	Vhsm__V1__Response r = VHSM__V1__RESPONSE__INIT;
	Vhsm__V1__SignResult sign = VHSM__V1__SIGN_RESULT__INIT;
	r.version = 1;
	r.id = 7;
	r.result_case = VHSM__V1__RESPONSE__RESULT_SIGN;
	r.sign = &sign;
	size_t n = pack_response(&r, buf);
	Vhsm__V1__Response *out;
	int code;
	ok(vp_rpc_decode(buf, n, 7, VHSM__V1__REQUEST__OP_SIGN, &out, &code) == CKR_OK && out, "a matching reply decodes");
	vp_rpc_free(out);
	ok(vp_rpc_decode(buf, n, 8, VHSM__V1__REQUEST__OP_SIGN, &out, &code) == CKR_DEVICE_ERROR && !out, "another request's id: refused");
	ok(vp_rpc_decode(buf, n, 7, VHSM__V1__REQUEST__OP_VERIFY, &out, &code) == CKR_DEVICE_ERROR, "the answer to another op: refused");
	r.version = 2;
	n = pack_response(&r, buf);
	ok(vp_rpc_decode(buf, n, 7, VHSM__V1__REQUEST__OP_SIGN, &out, &code) == CKR_DEVICE_ERROR, "another protocol version: refused");
	ok(vp_rpc_decode(buf, n - 1, 7, VHSM__V1__REQUEST__OP_SIGN, &out, &code) == CKR_DEVICE_ERROR, "truncated: refused");
	Vhsm__V1__Error e = VHSM__V1__ERROR__INIT;
	e.code = VHSM__V1__ERROR_CODE__ERROR_CODE_BAD_CREDENTIALS;
	r.version = 1;
	r.result_case = VHSM__V1__RESPONSE__RESULT_ERROR;
	r.error = &e;
	n = pack_response(&r, buf);
	ok(vp_rpc_decode(buf, n, 7, VHSM__V1__REQUEST__OP_LOGIN, &out, &code) == CKR_PIN_INCORRECT && code == 6, "BAD_CREDENTIALS: CKR_PIN_INCORRECT");
	ok(vp_rpc_decode((const uint8_t *)"\xff\xff\xff", 3, 7, VHSM__V1__REQUEST__OP_SIGN, &out, &code) == CKR_DEVICE_ERROR, "garbage: refused");

	ok(vp_error_to_ckr(VHSM__V1__ERROR_CODE__ERROR_CODE_LOCKED_OUT, 10) == CKR_PIN_LOCKED, "LOCKED_OUT: CKR_PIN_LOCKED");
	ok(vp_error_to_ckr(VHSM__V1__ERROR_CODE__ERROR_CODE_LOGIN_THROTTLED, 10) == CKR_FUNCTION_FAILED, "LOGIN_THROTTLED: CKR_FUNCTION_FAILED");
	ok(vp_error_to_ckr(VHSM__V1__ERROR_CODE__ERROR_CODE_CONTAINER_NOT_ALLOWED, 10) == CKR_FUNCTION_REJECTED, "CONTAINER_NOT_ALLOWED: CKR_FUNCTION_REJECTED");
	ok(vp_error_to_ckr(VHSM__V1__ERROR_CODE__ERROR_CODE_USAGE_NOT_ALLOWED, 30) == CKR_KEY_FUNCTION_NOT_PERMITTED, "USAGE_NOT_ALLOWED: CKR_KEY_FUNCTION_NOT_PERMITTED");
	ok(vp_error_to_ckr(VHSM__V1__ERROR_CODE__ERROR_CODE_DECRYPT_FAILED, 41) == CKR_ENCRYPTED_DATA_INVALID, "DECRYPT_FAILED: CKR_ENCRYPTED_DATA_INVALID");
	ok(vp_errno_to_ckr(111) == CKR_DEVICE_REMOVED && vp_errno_to_ckr(2) == CKR_DEVICE_REMOVED, "no server / no module: CKR_DEVICE_REMOVED");
	ok(vp_errno_to_ckr(110) == CKR_DEVICE_ERROR, "ETIMEDOUT: CKR_DEVICE_ERROR");
}

static void test_entry_points(void)
{
	CK_FUNCTION_LIST_PTR list = NULL;
	ok(C_GetFunctionList(&list) == CKR_OK && list->version.major == 2 && list->version.minor == 40, "C_GetFunctionList: the 2.40 list");
	CK_ULONG count = 0;
	ok(C_GetInterfaceList(NULL, &count) == CKR_OK && count == 2, "two interfaces");
	CK_INTERFACE_PTR iface = NULL;
	CK_VERSION v30 = { 3, 0 };
	ok(C_GetInterface((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &iface, 0) == CKR_OK &&
	   ((CK_FUNCTION_LIST *)iface->pFunctionList)->version.major == 3, "C_GetInterface(\"PKCS 11\", 3.0)");
	struct vp_function_list_3_0 *l3 = iface->pFunctionList;
	ok(l3->C_GetInterface == C_GetInterface && l3->v2.C_Sign == C_Sign && l3->C_MessageVerifyFinal == C_MessageVerifyFinal, "3.0 list is complete");
	ok(C_GetInterface((CK_UTF8CHAR_PTR) "Vendor", NULL, &iface, 0) != CKR_OK, "unknown interface name: refused");

	CK_SLOT_ID slots[4];
	ok(C_GetSlotList(CK_FALSE, slots, &count) == CKR_CRYPTOKI_NOT_INITIALIZED, "before C_Initialize: CKR_CRYPTOKI_NOT_INITIALIZED");
	CK_C_INITIALIZE_ARGS callbacks_only = { .CreateMutex = (CK_CREATEMUTEX)1, .DestroyMutex = (CK_DESTROYMUTEX)1,
						 .LockMutex = (CK_LOCKMUTEX)1, .UnlockMutex = (CK_UNLOCKMUTEX)1 };
	ok(C_Initialize(&callbacks_only) == CKR_CANT_LOCK, "only mutex callbacks: CKR_CANT_LOCK");
	CK_C_INITIALIZE_ARGS half = { .CreateMutex = (CK_CREATEMUTEX)1 };
	ok(C_Initialize(&half) == CKR_ARGUMENTS_BAD, "some callbacks: CKR_ARGUMENTS_BAD");
	CK_C_INITIALIZE_ARGS os = { .flags = CKF_OS_LOCKING_OK };
	setenv("VHSM_PKCS11_CONF", "/nonexistent/pkcs11.conf", 1);
	ok(C_Initialize(&os) == CKR_OK, "CKF_OS_LOCKING_OK, no configuration file: CKR_OK");
	ok(C_Initialize(NULL) == CKR_CRYPTOKI_ALREADY_INITIALIZED, "twice: CKR_CRYPTOKI_ALREADY_INITIALIZED");
	count = 4;
	ok(C_GetSlotList(CK_FALSE, slots, &count) == CKR_OK && count == 0, "no configuration: no slots");
	ok(C_Finalize(NULL) == CKR_OK, "C_Finalize");

	FILE *f = fopen("/tmp/vhsm-p11-unit.conf", "w");
	fputs("slot alice\nslot bob\n", f);
	fclose(f);
	setenv("VHSM_PKCS11_CONF", "/tmp/vhsm-p11-unit.conf", 1);
	setenv("VHSM_PKCS11_TEST_SOCKET", "/nonexistent/socket", 1);
	ok(C_Initialize(NULL) == CKR_OK, "C_Initialize with two slots and no server: CKR_OK");
	count = 4;
	ok(C_GetSlotList(CK_FALSE, slots, &count) == CKR_OK && count == 2, "two slots");
	count = 4;
	ok(C_GetSlotList(CK_TRUE, slots, &count) == CKR_OK && count == 0, "no server: no token present");
	CK_SLOT_INFO si;
	ok(C_GetSlotInfo(0, &si) == CKR_OK && !(si.flags & CKF_TOKEN_PRESENT), "slot info: CKF_TOKEN_PRESENT clear");
	CK_TOKEN_INFO ti;
	ok(C_GetTokenInfo(0, &ti) == CKR_TOKEN_NOT_PRESENT, "C_GetTokenInfo: CKR_TOKEN_NOT_PRESENT");
	CK_SESSION_HANDLE h;
	ok(C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h) == CKR_TOKEN_NOT_PRESENT, "C_OpenSession: CKR_TOKEN_NOT_PRESENT");
	ok(C_GetSlotInfo(5, &si) == CKR_SLOT_ID_INVALID, "slot 5: CKR_SLOT_ID_INVALID");

	pid_t pid = fork();
	if (pid == 0) {
		int fails = 0;
		CK_ULONG c = 4;
		fails += C_GetSlotList(CK_FALSE, slots, &c) != CKR_CRYPTOKI_NOT_INITIALIZED;
		fails += C_Initialize(NULL) != CKR_OK;
		c = 4;
		fails += C_GetSlotList(CK_FALSE, slots, &c) != CKR_OK || c != 2;
		fails += C_Finalize(NULL) != CKR_OK;
		_exit(fails);
	}
	int status = -1;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "after fork: the child's inherited state answers CKR_CRYPTOKI_NOT_INITIALIZED, then its own C_Initialize works");
	count = 4;
	ok(C_GetSlotList(CK_FALSE, slots, &count) == CKR_OK && count == 2, "the parent is not affected by the child");
	ok(C_Finalize(NULL) == CKR_OK, "C_Finalize");
	unlink("/tmp/vhsm-p11-unit.conf");
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	test_der();
	test_config();
	test_objects();
	test_decode();
	test_entry_points();
	printf("1..%d\n", n_tests);
	return n_failed ? 1 : 0;
}
