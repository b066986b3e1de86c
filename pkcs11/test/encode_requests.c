/*
 * Encodes one request of every kind the module sends, built the way the
 * module builds them (protobuf-c, proto3 defaults left unset, usages packed
 * in ascending order), and prints "name hex" lines. The host test decodes
 * each with the server's strict decoder, which refuses anything but the
 * canonical encoding.
 *
 * With --seeds DIR it writes fuzz seeds instead: replies as the server
 * sends them, prefixed with the fuzz target's selector byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhsm.pb-c.h"
#include "vectors.h"

static uint8_t session[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

static void emit(const char *name, Vhsm__V1__Request *req, int with_session)
{
	req->version = 1;
	req->id = 4242;
	if (with_session) {
		req->session.data = session;
		req->session.len = sizeof(session);
	}
	size_t n = vhsm__v1__request__get_packed_size(req);
	uint8_t *buf = malloc(n);
	vhsm__v1__request__pack(req, buf);
	printf("%s ", name);
	for (size_t i = 0; i < n; i++)
		printf("%02x", buf[i]);
	printf("\n");
	free(buf);
}

#define REQ(var, OP, field, Type, INIT) \
	Vhsm__V1__Request var = VHSM__V1__REQUEST__INIT; \
	Type var##_op = INIT; \
	var.op_case = VHSM__V1__REQUEST__OP_##OP; \
	var.field = &var##_op

static void requests(void)
{
	REQ(login, LOGIN, login, Vhsm__V1__LoginRequest, VHSM__V1__LOGIN_REQUEST__INIT);
	login_op.username = "alice";
	login_op.password.data = (uint8_t *)"pw";
	login_op.password.len = 2;
	emit("login", &login, 0);

	REQ(logout, LOGOUT, logout, Vhsm__V1__LogoutRequest, VHSM__V1__LOGOUT_REQUEST__INIT);
	emit("logout", &logout, 1);

	REQ(chpw, CHANGE_PASSWORD, change_password, Vhsm__V1__ChangePasswordRequest, VHSM__V1__CHANGE_PASSWORD_REQUEST__INIT);
	chpw_op.old_password.data = (uint8_t *)"old";
	chpw_op.old_password.len = 3;
	chpw_op.new_password.data = (uint8_t *)"new password";
	chpw_op.new_password.len = 12;
	emit("change_password", &chpw, 1);

	REQ(lpo, LIST_PUBLIC_OBJECTS, list_public_objects, Vhsm__V1__ListPublicObjectsRequest, VHSM__V1__LIST_PUBLIC_OBJECTS_REQUEST__INIT);
	lpo_op.username = "alice";
	lpo_op.after_key_id = "";
	lpo_op.limit = 100;
	emit("list_public_objects", &lpo, 0);
	lpo_op.after_key_id = "key-7";
	emit("list_public_objects_page2", &lpo, 0);

	REQ(lk, LIST_KEYS, list_keys, Vhsm__V1__ListKeysRequest, VHSM__V1__LIST_KEYS_REQUEST__INIT);
	lk_op.after_key_id = "";
	lk_op.limit = 100;
	emit("list_keys", &lk, 1);

	REQ(gen, GENERATE_KEY, generate_key, Vhsm__V1__GenerateKeyRequest, VHSM__V1__GENERATE_KEY_REQUEST__INIT);
	Vhsm__V1__KeySpec spec = VHSM__V1__KEY_SPEC__INIT;
	Vhsm__V1__KeyUsage usages[] = { VHSM__V1__KEY_USAGE__KEY_USAGE_SIGN, VHSM__V1__KEY_USAGE__KEY_USAGE_VERIFY };
	spec.type = VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P256;
	spec.key_id = "ssh-key";
	spec.label = "my ssh key";
	spec.n_usages = 2;
	spec.usages = usages;
	gen_op.spec = &spec;
	emit("generate_key", &gen, 1);
	spec.type = VHSM__V1__KEY_TYPE__KEY_TYPE_HMAC;
	spec.key_id = "";
	spec.label = "";
	spec.n_usages = 0;
	spec.extractable = 1;
	gen_op.length_bytes = 48;
	emit("generate_key_hmac", &gen, 1);

	REQ(exp, EXPORT_PUBLIC_KEY, export_public_key, Vhsm__V1__ExportPublicKeyRequest, VHSM__V1__EXPORT_PUBLIC_KEY_REQUEST__INIT);
	exp_op.key_id = "ssh-key";
	exp_op.format = VHSM__V1__PUBLIC_KEY_FORMAT__PUBLIC_KEY_FORMAT_SPKI_DER;
	emit("export_public_key", &exp, 1);

	REQ(del, DELETE_KEY, delete_key, Vhsm__V1__DeleteKeyRequest, VHSM__V1__DELETE_KEY_REQUEST__INIT);
	del_op.key_id = "ssh-key";
	emit("delete_key", &del, 1);

	REQ(sign, SIGN, sign, Vhsm__V1__SignRequest, VHSM__V1__SIGN_REQUEST__INIT);
	uint8_t digest[32] = { 0xaa };
	sign_op.key_id = "ssh-key";
	sign_op.algorithm = VHSM__V1__SIGNATURE_ALGORITHM__SIGNATURE_ALGORITHM_ECDSA_DIGEST;
	sign_op.data.data = digest;
	sign_op.data.len = 20;
	sign_op.encoding = VHSM__V1__SIGNATURE_ENCODING__SIGNATURE_ENCODING_RAW;
	emit("sign_ecdsa_digest", &sign, 1);
	sign_op.algorithm = VHSM__V1__SIGNATURE_ALGORITHM__SIGNATURE_ALGORITHM_RSA_PSS_SHA256;
	sign_op.data.len = 32;
	sign_op.prehashed = 1;
	emit("sign_pss_prehashed", &sign, 1);

	REQ(ver, VERIFY, verify, Vhsm__V1__VerifyRequest, VHSM__V1__VERIFY_REQUEST__INIT);
	ver_op.key_id = "ssh-key";
	ver_op.algorithm = VHSM__V1__SIGNATURE_ALGORITHM__SIGNATURE_ALGORITHM_ED25519;
	ver_op.data.data = digest;
	ver_op.data.len = 5;
	ver_op.signature.data = digest;
	ver_op.signature.len = 32;
	emit("verify", &ver, 1);

	REQ(mac, MAC, mac, Vhsm__V1__MacRequest, VHSM__V1__MAC_REQUEST__INIT);
	mac_op.key_id = "mac";
	mac_op.algorithm = VHSM__V1__MAC_ALGORITHM__MAC_ALGORITHM_HMAC_SHA384;
	mac_op.data.data = digest;
	mac_op.data.len = 0;
	emit("mac_empty_data", &mac, 1);

	REQ(vmac, VERIFY_MAC, verify_mac, Vhsm__V1__VerifyMacRequest, VHSM__V1__VERIFY_MAC_REQUEST__INIT);
	vmac_op.key_id = "mac";
	vmac_op.algorithm = VHSM__V1__MAC_ALGORITHM__MAC_ALGORITHM_HMAC_SHA256;
	vmac_op.data.data = digest;
	vmac_op.data.len = 3;
	vmac_op.mac.data = digest;
	vmac_op.mac.len = 32;
	emit("verify_mac", &vmac, 1);

	REQ(dg, DIGEST, digest, Vhsm__V1__DigestRequest, VHSM__V1__DIGEST_REQUEST__INIT);
	dg_op.algorithm = VHSM__V1__DIGEST_ALGORITHM__DIGEST_ALGORITHM_SHA512;
	dg_op.data.data = digest;
	dg_op.data.len = 7;
	emit("digest", &dg, 1);

	REQ(enc, ENCRYPT, encrypt, Vhsm__V1__EncryptRequest, VHSM__V1__ENCRYPT_REQUEST__INIT);
	enc_op.key_id = "aes";
	enc_op.algorithm = VHSM__V1__ENCRYPTION_ALGORITHM__ENCRYPTION_ALGORITHM_AES_256_GCM;
	enc_op.plaintext.data = digest;
	enc_op.plaintext.len = 16;
	enc_op.aad.data = digest;
	enc_op.aad.len = 4;
	emit("encrypt", &enc, 1);

	REQ(dec, DECRYPT, decrypt, Vhsm__V1__DecryptRequest, VHSM__V1__DECRYPT_REQUEST__INIT);
	dec_op.key_id = "aes";
	dec_op.algorithm = VHSM__V1__ENCRYPTION_ALGORITHM__ENCRYPTION_ALGORITHM_AES_256_GCM;
	dec_op.nonce.data = digest;
	dec_op.nonce.len = 12;
	dec_op.ciphertext.data = digest;
	dec_op.ciphertext.len = 16;
	dec_op.tag.data = digest;
	dec_op.tag.len = 16;
	emit("decrypt", &dec, 1);

	REQ(agree, AGREE_KEY, agree_key, Vhsm__V1__AgreeKeyRequest, VHSM__V1__AGREE_KEY_REQUEST__INIT);
	Vhsm__V1__KeySpec result = VHSM__V1__KEY_SPEC__INIT;
	Vhsm__V1__KeyUsage derive[] = { VHSM__V1__KEY_USAGE__KEY_USAGE_DERIVE };
	result.type = VHSM__V1__KEY_TYPE__KEY_TYPE_SECRET;
	result.key_id = "";
	result.label = "";
	result.n_usages = 1;
	result.usages = derive;
	agree_op.private_key_id = "ecdh";
	agree_op.peer_public_key.data = (uint8_t *)ec_spki + 26;
	agree_op.peer_public_key.len = 65;
	agree_op.result = &result;
	emit("agree_key", &agree, 1);

	REQ(rnd, RANDOM, random, Vhsm__V1__RandomRequest, VHSM__V1__RANDOM_REQUEST__INIT);
	rnd_op.length = 4096;
	emit("random", &rnd, 1);

	REQ(cc, CREATE_CERTIFICATE, create_certificate, Vhsm__V1__CreateCertificateRequest, VHSM__V1__CREATE_CERTIFICATE_REQUEST__INIT);
	cc_op.id.data = (uint8_t *)"ssh-key";
	cc_op.id.len = 7;
	cc_op.label = "cert";
	cc_op.der.data = (uint8_t *)cert_der;
	cc_op.der.len = cert_der_len;
	emit("create_certificate", &cc, 1);

	REQ(dc, DELETE_CERTIFICATE, delete_certificate, Vhsm__V1__DeleteCertificateRequest, VHSM__V1__DELETE_CERTIFICATE_REQUEST__INIT);
	dc_op.cert_id = "0123456789abcdef0123456789abcdef";
	emit("delete_certificate", &dc, 1);

	REQ(di, DIGEST_INIT, digest_init, Vhsm__V1__DigestInitRequest, VHSM__V1__DIGEST_INIT_REQUEST__INIT);
	di_op.algorithm = VHSM__V1__DIGEST_ALGORITHM__DIGEST_ALGORITHM_SHA256;
	emit("digest_init", &di, 1);
	REQ(mi, MAC_INIT, mac_init, Vhsm__V1__MacInitRequest, VHSM__V1__MAC_INIT_REQUEST__INIT);
	mi_op.key_id = "mac";
	mi_op.algorithm = VHSM__V1__MAC_ALGORITHM__MAC_ALGORITHM_HMAC_SHA512;
	emit("mac_init", &mi, 1);
	REQ(su, STREAM_UPDATE, stream_update, Vhsm__V1__StreamUpdateRequest, VHSM__V1__STREAM_UPDATE_REQUEST__INIT);
	su_op.stream_id = 3;
	su_op.data.data = digest;
	su_op.data.len = 32;
	emit("stream_update", &su, 1);
	REQ(sf, STREAM_FINAL, stream_final, Vhsm__V1__StreamFinalRequest, VHSM__V1__STREAM_FINAL_REQUEST__INIT);
	sf_op.stream_id = 3;
	sf_op.expected_mac.data = digest;
	sf_op.expected_mac.len = 32;
	emit("stream_final", &sf, 1);
}

static void seed(const char *dir, const char *name, uint8_t selector, const uint8_t *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		exit(1);
	fputc(selector, f);
	fwrite(data, 1, len, f);
	fclose(f);
}

static void seed_response(const char *dir, const char *name, uint8_t selector, Vhsm__V1__Response *r)
{
	r->version = 1;
	r->id = 0x08; /* the fuzz target takes the reply's first byte (the version tag, 0x08) as the expected id */
	size_t n = vhsm__v1__response__get_packed_size(r);
	uint8_t *buf = malloc(n);
	vhsm__v1__response__pack(r, buf);
	seed(dir, name, selector, buf, n);
	free(buf);
}

static void seeds(const char *dir)
{
	Vhsm__V1__KeyInfo key = VHSM__V1__KEY_INFO__INIT;
	Vhsm__V1__KeyUsage usages[] = { VHSM__V1__KEY_USAGE__KEY_USAGE_SIGN, VHSM__V1__KEY_USAGE__KEY_USAGE_VERIFY };
	key.key_id = "ssh-key";
	key.type = VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P256;
	key.label = "label";
	key.n_usages = 2;
	key.usages = usages;
	Vhsm__V1__PublicKeyObject pk = VHSM__V1__PUBLIC_KEY_OBJECT__INIT;
	pk.key = &key;
	pk.spki_der.data = (uint8_t *)ec_spki;
	pk.spki_der.len = ec_spki_len;
	Vhsm__V1__PublicKeyObject *pks[] = { &pk };
	Vhsm__V1__CertificateInfo cert = VHSM__V1__CERTIFICATE_INFO__INIT;
	cert.cert_id = "0123456789abcdef0123456789abcdef";
	cert.id.data = (uint8_t *)"ssh-key";
	cert.id.len = 7;
	cert.label = "cert";
	cert.der.data = (uint8_t *)cert_der;
	cert.der.len = cert_der_len;
	Vhsm__V1__CertificateInfo *certs[] = { &cert };
	Vhsm__V1__PublicObjectList list = VHSM__V1__PUBLIC_OBJECT_LIST__INIT;
	list.n_keys = 1;
	list.keys = pks;
	list.n_certificates = 1;
	list.certificates = certs;
	list.next_after_key_id = "";
	Vhsm__V1__Response r = VHSM__V1__RESPONSE__INIT;
	r.result_case = VHSM__V1__RESPONSE__RESULT_LIST_PUBLIC_OBJECTS;
	r.list_public_objects = &list;
	seed_response(dir, "reply-list-public", 0, &r);

	Vhsm__V1__KeyInfo *keys[] = { &key };
	Vhsm__V1__KeyList kl = VHSM__V1__KEY_LIST__INIT;
	kl.n_keys = 1;
	kl.keys = keys;
	kl.next_after_key_id = "";
	Vhsm__V1__Response r2 = VHSM__V1__RESPONSE__INIT;
	r2.result_case = VHSM__V1__RESPONSE__RESULT_LIST_KEYS;
	r2.list_keys = &kl;
	seed_response(dir, "reply-list-keys", 1, &r2);

	Vhsm__V1__Error e = VHSM__V1__ERROR__INIT;
	e.code = VHSM__V1__ERROR_CODE__ERROR_CODE_BAD_CREDENTIALS;
	e.message = "bad credentials";
	Vhsm__V1__Response r3 = VHSM__V1__RESPONSE__INIT;
	r3.result_case = VHSM__V1__RESPONSE__RESULT_ERROR;
	r3.error = &e;
	seed_response(dir, "reply-error", 2, &r3);

	seed(dir, "der-spki-rsa", 8, rsa_spki, rsa_spki_len);
	seed(dir, "der-spki-ed25519", 8, ed_spki, ed_spki_len);
	seed(dir, "der-cert", 9, cert_der, cert_der_len);
	const char *conf = "slot alice\nslot bob hide-types=ed25519 only-ids=a,b\n";
	seed(dir, "config", 16, (const uint8_t *)conf, strlen(conf));
	const uint8_t tmpl[] = { 0x00, 0x00, 8, 3, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x01, 1, 'k', 0x81, 0x01, 0 };
	seed(dir, "template", 24, tmpl, sizeof(tmpl));
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--seeds") == 0)
		seeds(argv[2]);
	else
		requests();
	return 0;
}
