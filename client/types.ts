/**
 * The client library's public types: string names instead of enum numbers,
 * Dates instead of epoch milliseconds.
 */
import type {
  DigestAlgorithmName,
  EncryptionAlgorithmName,
  KdfAlgorithmName,
  KeyFormatName,
  KeyTypeName,
  KeyUsageName,
  MacAlgorithmName,
  SignatureAlgorithmName,
  SignatureEncodingName,
} from '../proto/index.js';

export type {
  DigestAlgorithmName,
  EncryptionAlgorithmName,
  KdfAlgorithmName,
  KeyFormatName,
  KeyTypeName,
  KeyUsageName,
  MacAlgorithmName,
  PublicKeyFormatName,
  SignatureAlgorithmName,
  SignatureEncodingName,
} from '../proto/index.js';

export interface CallOptions {
  /** Per-call deadline in milliseconds (default: the client's). */
  readonly timeoutMs?: number;
}

export interface KeyInfo {
  readonly keyId: string;
  readonly type: KeyTypeName | 'unknown';
  readonly label: string;
  readonly usages: readonly (KeyUsageName | 'unknown')[];
  readonly extractable: boolean;
  readonly createdAt: Date;
  /** null until first used. */
  readonly lastUsedAt: Date | null;
  readonly useCount: number;
  /** Length of a secret key; 0 for key pairs. */
  readonly lengthBytes: number;
}

export interface KeySpec {
  readonly type: KeyTypeName;
  /** Omit to let the server choose (32 hex characters). */
  readonly keyId?: string;
  readonly label?: string;
  /** Omit for the type's defaults (sign+verify for key pairs, mac for hmac). */
  readonly usages?: readonly KeyUsageName[];
  /** Default false: the key never leaves the server. */
  readonly extractable?: boolean;
}

export interface GenerateKeySpec extends KeySpec {
  /** Secret keys only (hmac: 16..64, default 32). */
  readonly lengthBytes?: number;
}

export interface ImportKeySpec extends KeySpec {
  readonly format: KeyFormatName;
  readonly keyData: Uint8Array;
}

export interface SignOptions extends CallOptions {
  /**
   * Default: the key type's algorithm (ecdsa-sha256 for ec-p256 and
   * ec-secp256k1, ecdsa-sha384 for ec-p384, ecdsa-sha512 for ec-p521,
   * ed25519 for ed25519, rsa-pss-sha256 for RSA keys).
   * 'ecdsa-digest' (PKCS#11 CKM_ECDSA) signs `data` as a digest of 1..64
   * bytes; 'rsa-pkcs1-raw' (CKM_RSA_PKCS) pads `data` as given (normally a
   * DigestInfo), at most modulus bytes - 11. Neither takes `prehashed`.
   */
  readonly algorithm?: SignatureAlgorithmName;
  /** ECDSA only: 'der' (default) or 'raw' (r || s). */
  readonly encoding?: SignatureEncodingName;
  /** ECDSA and RSA with a named hash only: `data` is the digest (the algorithm's hash length), not the message. */
  readonly prehashed?: boolean;
}

export interface MacOptions extends CallOptions {
  readonly algorithm?: MacAlgorithmName;
}

export interface DigestOptions extends CallOptions {
  readonly algorithm?: DigestAlgorithmName;
}

export interface EncryptOptions extends CallOptions {
  /** Default: the key type's (aes-256-gcm, chacha20-poly1305, rsa-oaep-sha256). */
  readonly algorithm?: EncryptionAlgorithmName;
  /** Associated data (AEAD only): authenticated, not encrypted; decrypt needs the same. */
  readonly aad?: Uint8Array;
}

export type DecryptOptions = EncryptOptions;

/** AEAD: a server-chosen 12-byte nonce and a 16-byte tag. RSA-OAEP: ciphertext only (nonce and tag empty). */
export interface Ciphertext {
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

export interface KdfParams {
  /** Default and only value today: 'hkdf-sha256'. */
  readonly algorithm?: KdfAlgorithmName;
  readonly salt?: Uint8Array;
  readonly info?: Uint8Array;
}

/** The key a derivation stores. Derived keys are secret keys. */
export interface DerivedKeySpec extends Omit<KeySpec, 'type'> {
  readonly type?: KeyTypeName;
  /** Output length; default: the type's (32 for secret, aes-256, chacha20, hmac). */
  readonly lengthBytes?: number;
  readonly kdf?: KdfParams;
}

/** agreeKey: without `kdf` the result is the raw shared secret, type 'secret' (the default). */
export type AgreeKeySpec = DerivedKeySpec;

/** deriveKey: HKDF-SHA256 over a stored 'secret' key; `type` is required. */
export interface DeriveKeySpec extends DerivedKeySpec {
  readonly type: KeyTypeName;
}

export interface DerivedKey {
  readonly key: KeyInfo;
  /** The derived material, only when the result was created extractable. */
  readonly material: Uint8Array | null;
}

/** The user's default BYOK wrapping key (RSA-4096, usage unwrap). */
export interface WrappingKey {
  readonly key: KeyInfo;
  /** SPKI DER. */
  readonly publicKey: Uint8Array;
  readonly publicKeyPem: string;
}

export interface ImportWrappedKeySpec extends KeySpec {
  /** RSA-OAEP-SHA256(ephemeral AES key) || AES-KWP(ephemeral, material). */
  readonly wrappedKey: Uint8Array;
  /** An RSA key with usage unwrap; default: the user's wrapping key ('vhsm-wrapping-key'). */
  readonly wrappingKeyId?: string;
  /** Format of the wrapped material; default pkcs8-der for key pairs, raw for secrets. */
  readonly format?: KeyFormatName;
}

/** Where exportWrappedKey wraps to: a stored RSA key with usage wrap, or an RSA public key (SPKI DER bytes or PEM). */
export type WrapTarget = { readonly wrappingKeyId: string } | { readonly publicKey: Uint8Array | string };

export interface ExportWrappedOptions extends CallOptions {
  /** Default pkcs8-der for key pairs, raw for secrets. */
  readonly format?: KeyFormatName;
}

/** An X.509 certificate stored for the user (PKCS#11 CKO_CERTIFICATE). */
export interface CertificateInfo {
  /** Server-chosen, 32 hex characters. */
  readonly certId: string;
  /** PKCS#11 CKA_ID: the bytes that pair it with a key (normally the key id's). */
  readonly id: Uint8Array;
  readonly label: string;
  /** The certificate, DER. */
  readonly der: Uint8Array;
  readonly createdAt: Date;
}

export interface NewCertificate {
  /** Exactly one X.509 certificate, DER, at most 16 KiB. */
  readonly der: Uint8Array;
  /** CKA_ID, 0..64 bytes (default empty). */
  readonly id?: Uint8Array;
  /** Up to 128 bytes, no control characters. */
  readonly label?: string;
}

/** A key pair's public half, listed without logging in. */
export interface PublicKeyObject {
  /** Its key info, without use counters (useCount 0, lastUsedAt null: activity is not public). */
  readonly key: KeyInfo;
  /** SubjectPublicKeyInfo, DER. */
  readonly spki: Uint8Array;
}

export interface PublicObjectsOptions extends CallOptions {
  /** Page cursor: '' (default) for the first page, else the previous page's nextAfterKeyId. */
  readonly afterKeyId?: string;
  /** Key pairs per page, 1..100 (default 100; a page may hold fewer). */
  readonly limit?: number;
}

export interface PublicObjectPage {
  readonly keys: readonly PublicKeyObject[];
  /** '' on the last page; else the afterKeyId of the next one. */
  readonly nextAfterKeyId: string;
  /** Every certificate of the user on the first page; empty on the others. */
  readonly certificates: readonly CertificateInfo[];
}

export interface PublicObjects {
  readonly keys: readonly PublicKeyObject[];
  readonly certificates: readonly CertificateInfo[];
}
