// vhsm_ecdsa: ECDSA over a caller's digest (PKCS#11 CKM_ECDSA), which
// node:crypto cannot do (its sign() always hashes first).
//
// One function: signDigest(group, scalar, digest) -> DER ECDSA-Sig-Value,
// `group` an OpenSSL curve name (prime256v1, secp384r1, secp521r1,
// secp256k1) and `scalar` the private key's big-endian scalar. The key is
// built, used and freed within the call (OpenSSL clears the scalar's BIGNUMs
// on free), so no key outlives the request here; the caller zeroes its copy.
// Built from the scalar rather than decoded from PKCS#8: OpenSSL 3.0's
// decoders cost ~0.5 ms a key, the signature itself ~0.03 ms. The digest may
// have any length: OpenSSL takes its leftmost bits up to the order's length,
// as the standard says. The OpenSSL is Node's own: its symbols resolve from
// the node binary at load time, so nothing is linked.

#include <napi.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY *key) const { EVP_PKEY_free(key); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX *ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct BnClearFree {
  void operator()(BIGNUM *bn) const { BN_clear_free(bn); }
};
struct GroupFree {
  void operator()(EC_GROUP *group) const { EC_GROUP_free(group); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD *bld) const { OSSL_PARAM_BLD_free(bld); }
};
// The scalar's BIGNUM is "secure", so its copy in the params lives in the
// params' secure block, which OSSL_PARAM_free clears before freeing.
struct ParamsFree {
  void operator()(OSSL_PARAM *params) const { OSSL_PARAM_free(params); }
};

const char *const kGroups[] = {"prime256v1", "secp384r1", "secp521r1", "secp256k1"};
constexpr size_t kMaxScalar = 66;  // P-521

// Large enough for any digest a caller may send (SHA-512 and beyond are cut by the order anyway).
constexpr size_t kMaxDigest = 1024;

Napi::Uint8Array BytesArg(const Napi::CallbackInfo &info, size_t index, const char *what) {
  if (info.Length() <= index || !info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Uint8Array");
  }
  return info[index].As<Napi::Uint8Array>();
}

// Index of `group` in kGroups, or -1 when this addon does not sign on it.
int GroupIndex(const std::string &group) {
  for (size_t i = 0; i < std::size(kGroups); i++) {
    if (group == kGroups[i]) return static_cast<int>(i);
  }
  return -1;
}

// The order of kGroups[index], made once (the addon runs on the JS thread only).
const BIGNUM *OrderOf(int index) {
  static std::unique_ptr<EC_GROUP, GroupFree> curves[std::size(kGroups)];
  if (!curves[index]) curves[index].reset(EC_GROUP_new_by_curve_name(OBJ_sn2nid(kGroups[index])));
  return curves[index] ? EC_GROUP_get0_order(curves[index].get()) : nullptr;
}

// The private key on kGroups[index] with scalar `d`; null if OpenSSL refuses it.
std::unique_ptr<EVP_PKEY, PkeyFree> KeyFromScalar(int index, const uint8_t *d, size_t length) {
  std::unique_ptr<BIGNUM, BnClearFree> scalar(BN_secure_new());
  if (!scalar || !BN_bin2bn(d, static_cast<int>(length), scalar.get())) return nullptr;
  // OpenSSL builds a key from any scalar: only 1..n-1 is a private key.
  const BIGNUM *order = OrderOf(index);
  if (!order || BN_is_zero(scalar.get()) || BN_cmp(scalar.get(), order) >= 0) return nullptr;
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, kGroups[index], 0) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, scalar.get()) != 1) {
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM, ParamsFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY *key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 || EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_KEYPAIR, params.get()) != 1) {
    return nullptr;
  }
  return std::unique_ptr<EVP_PKEY, PkeyFree>(key);
}

Napi::Value SignDigest(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "group must be a string");
  const int index = GroupIndex(info[0].As<Napi::String>().Utf8Value());
  if (index < 0) throw Napi::RangeError::New(env, "unsupported curve");
  Napi::Uint8Array scalar = BytesArg(info, 1, "scalar");
  Napi::Uint8Array digest = BytesArg(info, 2, "digest");
  if (scalar.ByteLength() == 0 || scalar.ByteLength() > kMaxScalar) throw Napi::RangeError::New(env, "scalar length out of range");
  if (digest.ByteLength() == 0 || digest.ByteLength() > kMaxDigest) throw Napi::RangeError::New(env, "digest length out of range");

  std::unique_ptr<EVP_PKEY, PkeyFree> key = KeyFromScalar(index, scalar.Data(), scalar.ByteLength());
  if (!key) throw Napi::Error::New(env, "not a private key on this curve");
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  size_t length = 0;
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &length, digest.Data(), digest.ByteLength()) != 1) {
    throw Napi::Error::New(env, "ECDSA signing failed");
  }
  std::vector<unsigned char> signature(length);
  if (EVP_PKEY_sign(ctx.get(), signature.data(), &length, digest.Data(), digest.ByteLength()) != 1) {
    throw Napi::Error::New(env, "ECDSA signing failed");
  }
  return Napi::Buffer<unsigned char>::Copy(env, signature.data(), length);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("signDigest", Napi::Function::New(env, SignDigest, "signDigest"));
  return exports;
}

}  // namespace

NODE_API_MODULE(vhsm_ecdsa, Init)
