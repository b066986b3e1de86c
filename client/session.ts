/**
 * VhsmSession: a logged-in session, usable only from the process that
 * opened it. Key handles are key ids (strings); data is Uint8Array in and
 * out.
 */
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import {
  DIGEST_ALGORITHMS,
  ENCRYPTION_ALGORITHMS,
  KDF_ALGORITHMS,
  KEY_FORMATS,
  KEY_TYPES,
  KEY_USAGES,
  MAC_ALGORITHMS,
  PUBLIC_KEY_FORMATS,
  SIGNATURE_ALGORITHMS,
  SIGNATURE_ENCODINGS,
  type KeyFormatName,
  type OperationName,
  type PublicKeyFormatName,
  type pb,
} from '../proto/index.js';
import type { VhsmClient } from './client.js';
import { bytesOf, passwordBytes, toCertificateInfo, toKeyInfo } from './convert.js';
import { VhsmError } from './errors.js';
import { STREAM_CHUNK_BYTES, VhsmStream, type SessionCall } from './stream.js';
import type {
  AgreeKeySpec,
  CallOptions,
  CertificateInfo,
  Ciphertext,
  DecryptOptions,
  DeriveKeySpec,
  DerivedKey,
  DerivedKeySpec,
  DigestOptions,
  EncryptOptions,
  ExportWrappedOptions,
  GenerateKeySpec,
  ImportKeySpec,
  ImportWrappedKeySpec,
  KdfParams,
  KeyInfo,
  KeySpec,
  MacOptions,
  NewCertificate,
  SignOptions,
  WrappingKey,
  WrapTarget,
} from './types.js';

const decoder = new TextDecoder();

function specToProto(spec: KeySpec): pb.KeySpec.$Properties {
  return {
    type: KEY_TYPES[spec.type],
    keyId: spec.keyId ?? '',
    label: spec.label ?? '',
    usages: (spec.usages ?? []).map((usage) => KEY_USAGES[usage]),
    extractable: spec.extractable ?? false,
  };
}

function derivedSpecToProto(spec: DerivedKeySpec): pb.KeySpec.$Properties {
  return specToProto({ ...spec, type: spec.type ?? 'secret' });
}


function toDerivedKey(result: pb.DerivedKey.$Properties): DerivedKey {
  const material = result.keyMaterial && result.keyMaterial.length ? new Uint8Array(result.keyMaterial) : null;
  return { key: toKeyInfo(result.key ?? {}), material };
}

/** A public key given as SPKI DER / raw bytes, or as a PEM string (converted to SPKI DER here). */
function publicKeyBytes(key: Uint8Array | string, what: string): Uint8Array {
  if (typeof key !== 'string') return key;
  try {
    return new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  } catch {
    throw new VhsmError('INVALID_ARGUMENT', `${what} is not a PEM public key`);
  }
}

function kdfToProto(kdf: KdfParams): pb.Kdf.$Properties {
  return { algorithm: enumValue(KDF_ALGORITHMS, kdf.algorithm, 'kdf algorithm'), salt: kdf.salt, info: kdf.info };
}

/** A value from a string-union option, or 0 ("server default") when omitted. */
function enumValue<T extends Record<string, number>>(table: T, name: keyof T | undefined, what: string): number {
  if (name === undefined) return 0;
  const value = table[name];
  if (value === undefined) throw new VhsmError('INVALID_ARGUMENT', `unknown ${what} ${String(name)}`);
  return value;
}

export class VhsmSession {
  private sessionId: Uint8Array | null;
  private readonly boundCall: SessionCall = (op, body, options) => this.call(op, body, options);

  /** @internal Created by VhsmClient.login. */
  constructor(
    private readonly client: VhsmClient,
    readonly username: string,
    sessionId: Uint8Array,
    /** The server ends the session after this long without requests. */
    readonly idleTimeoutMs: number,
    private readonly onEnd: (session: VhsmSession) => void,
  ) {
    this.sessionId = sessionId;
  }

  /** False after logout (or after the server reported the session gone). */
  get active(): boolean {
    return this.sessionId !== null;
  }

  async generateKey(spec: GenerateKeySpec, options?: CallOptions): Promise<KeyInfo> {
    const result = await this.call('generateKey', { spec: specToProto(spec), lengthBytes: spec.lengthBytes ?? 0 }, options);
    return toKeyInfo(result);
  }

  async importKey(spec: ImportKeySpec, options?: CallOptions): Promise<KeyInfo> {
    const format = KEY_FORMATS[spec.format];
    if (format === undefined) throw new VhsmError('INVALID_ARGUMENT', `unknown key format ${spec.format}`);
    const result = await this.call('importKey', { spec: specToProto(spec), format, keyData: spec.keyData }, options);
    return toKeyInfo(result);
  }

  /** All of this user's keys, in key id order (follows the server's pages). */
  async listKeys(options?: CallOptions): Promise<KeyInfo[]> {
    const keys: KeyInfo[] = [];
    let after = '';
    for (;;) {
      const page = await this.call('listKeys', { afterKeyId: after, limit: 0 }, options);
      for (const info of page.keys ?? []) keys.push(toKeyInfo(info));
      after = page.nextAfterKeyId ?? '';
      if (!after) return keys;
    }
  }

  async keyInfo(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return toKeyInfo(await this.call('keyInfo', { keyId }, options));
  }

  async deleteKey(keyId: string, options?: CallOptions): Promise<void> {
    await this.call('deleteKey', { keyId }, options);
  }

  /** The public half of a key pair: SPKI DER bytes, a PEM string, or a JWK object. */
  publicKey(keyId: string, format?: 'spki-der', options?: CallOptions): Promise<Uint8Array>;
  publicKey(keyId: string, format: 'spki-pem', options?: CallOptions): Promise<string>;
  publicKey(keyId: string, format: 'jwk', options?: CallOptions): Promise<JsonWebKey>;
  async publicKey(keyId: string, format: PublicKeyFormatName = 'spki-der', options?: CallOptions): Promise<Uint8Array | string | JsonWebKey> {
    const value = PUBLIC_KEY_FORMATS[format];
    if (value === undefined) throw new VhsmError('INVALID_ARGUMENT', `unknown public key format ${format}`);
    const result = await this.call('exportPublicKey', { keyId, format: value }, options);
    const data = new Uint8Array(result.data ?? new Uint8Array(0));
    if (format === 'spki-pem') return decoder.decode(data);
    if (format === 'jwk') return JSON.parse(decoder.decode(data)) as JsonWebKey;
    return data;
  }

  /** Plain key material of a key created extractable (NOT_EXTRACTABLE otherwise). */
  async exportKey(keyId: string, format: KeyFormatName, options?: CallOptions): Promise<Uint8Array> {
    const value = KEY_FORMATS[format];
    if (value === undefined) throw new VhsmError('INVALID_ARGUMENT', `unknown key format ${format}`);
    const result = await this.call('exportKey', { keyId, format: value }, options);
    return new Uint8Array(result.keyData ?? new Uint8Array(0));
  }

  async sign(keyId: string, data: Uint8Array, options: SignOptions = {}): Promise<Uint8Array> {
    const result = await this.call(
      'sign',
      {
        keyId,
        data,
        algorithm: enumValue(SIGNATURE_ALGORITHMS, options.algorithm, 'signature algorithm'),
        encoding: enumValue(SIGNATURE_ENCODINGS, options.encoding, 'signature encoding'),
        prehashed: options.prehashed ?? false,
      },
      options,
    );
    return new Uint8Array(result.signature ?? new Uint8Array(0));
  }

  async verify(keyId: string, data: Uint8Array, signature: Uint8Array, options: SignOptions = {}): Promise<boolean> {
    const result = await this.call(
      'verify',
      {
        keyId,
        data,
        signature,
        algorithm: enumValue(SIGNATURE_ALGORITHMS, options.algorithm, 'signature algorithm'),
        encoding: enumValue(SIGNATURE_ENCODINGS, options.encoding, 'signature encoding'),
        prehashed: options.prehashed ?? false,
      },
      options,
    );
    return result.valid === true;
  }

  /** The MAC of `data`; inputs larger than one message are streamed. */
  async mac(keyId: string, data: Uint8Array, options: MacOptions = {}): Promise<Uint8Array> {
    if (data.length > STREAM_CHUNK_BYTES) return (await this.macInit(keyId, options)).final(data, options);
    const result = await this.call('mac', { keyId, data, algorithm: enumValue(MAC_ALGORITHMS, options.algorithm, 'MAC algorithm') }, options);
    return new Uint8Array(result.mac ?? new Uint8Array(0));
  }

  /** Verified on the server in constant time; inputs larger than one message are streamed. */
  async verifyMac(keyId: string, data: Uint8Array, mac: Uint8Array, options: MacOptions = {}): Promise<boolean> {
    if (data.length > STREAM_CHUNK_BYTES) return (await this.macInit(keyId, options)).verify(mac, data, options);
    const result = await this.call(
      'verifyMac',
      { keyId, data, mac, algorithm: enumValue(MAC_ALGORITHMS, options.algorithm, 'MAC algorithm') },
      options,
    );
    return result.valid === true;
  }

  /** The digest of `data`; inputs larger than one message are streamed. */
  async digest(data: Uint8Array, options: DigestOptions = {}): Promise<Uint8Array> {
    if (data.length > STREAM_CHUNK_BYTES) return (await this.digestInit(options)).final(data, options);
    const result = await this.call('digest', { data, algorithm: enumValue(DIGEST_ALGORITHMS, options.algorithm, 'digest algorithm') }, options);
    return new Uint8Array(result.digest ?? new Uint8Array(0));
  }

  /** Starts a streaming digest on the server. */
  async digestInit(options: DigestOptions = {}): Promise<VhsmStream> {
    const result = await this.call('digestInit', { algorithm: enumValue(DIGEST_ALGORITHMS, options.algorithm, 'digest algorithm') }, options);
    return new VhsmStream(this.boundCall, result.streamId ?? 0, 'digest');
  }

  /** Starts a streaming MAC with a stored key (usage mac). */
  async macInit(keyId: string, options: MacOptions = {}): Promise<VhsmStream> {
    const result = await this.call('macInit', { keyId, algorithm: enumValue(MAC_ALGORITHMS, options.algorithm, 'MAC algorithm') }, options);
    return new VhsmStream(this.boundCall, result.streamId ?? 0, 'mac');
  }

  /** AEAD encryption under a server-chosen random nonce, or RSA-OAEP. */
  async encrypt(keyId: string, plaintext: Uint8Array, options: EncryptOptions = {}): Promise<Ciphertext> {
    const result = await this.call(
      'encrypt',
      { keyId, plaintext, aad: options.aad, algorithm: enumValue(ENCRYPTION_ALGORITHMS, options.algorithm, 'encryption algorithm') },
      options,
    );
    return { nonce: bytesOf(result.nonce), ciphertext: bytesOf(result.ciphertext), tag: bytesOf(result.tag) };
  }

  /** The plaintext, or DECRYPT_FAILED when the ciphertext, tag, nonce or aad do not authenticate. */
  async decrypt(keyId: string, sealed: Ciphertext, options: DecryptOptions = {}): Promise<Uint8Array> {
    const result = await this.call(
      'decrypt',
      {
        keyId,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
        tag: sealed.tag,
        aad: options.aad,
        algorithm: enumValue(ENCRYPTION_ALGORITHMS, options.algorithm, 'encryption algorithm'),
      },
      options,
    );
    return bytesOf(result.plaintext);
  }

  /**
   * ECDH (ec-p256/p384/p521) or X25519 with a stored private key (usage
   * derive) against `peerPublicKey` (SPKI DER, raw point / 32 bytes, or PEM).
   * The result is stored as a new key; its material comes back only if
   * `spec.extractable`.
   */
  async agreeKey(privateKeyId: string, peerPublicKey: Uint8Array | string, spec: AgreeKeySpec = {}, options?: CallOptions): Promise<DerivedKey> {
    const result = await this.call(
      'agreeKey',
      {
        privateKeyId,
        peerPublicKey: publicKeyBytes(peerPublicKey, 'peerPublicKey'),
        result: derivedSpecToProto(spec),
        lengthBytes: spec.lengthBytes ?? 0,
        kdf: spec.kdf ? kdfToProto(spec.kdf) : undefined,
      },
      options,
    );
    return toDerivedKey(result);
  }

  /** HKDF-SHA256 over a stored 'secret' key (usage derive), stored as a new key. */
  async deriveKey(baseKeyId: string, spec: DeriveKeySpec, options?: CallOptions): Promise<DerivedKey> {
    const result = await this.call(
      'deriveKey',
      { baseKeyId, result: derivedSpecToProto(spec), lengthBytes: spec.lengthBytes ?? 0, kdf: kdfToProto(spec.kdf ?? {}) },
      options,
    );
    return toDerivedKey(result);
  }

  /** `length` (1..4096) bytes from the server's CSPRNG. */
  async random(length: number, options?: CallOptions): Promise<Uint8Array> {
    return bytesOf((await this.call('random', { length }, options)).data);
  }

  /** The user's BYOK wrapping key (RSA-4096, usage unwrap), created on first use. */
  async wrappingKey(options?: CallOptions): Promise<WrappingKey> {
    const result = await this.call('wrappingKey', { format: PUBLIC_KEY_FORMATS['spki-der'] }, options);
    const publicKey = bytesOf(result.publicKey);
    const publicKeyPem = createPublicKey({ key: Buffer.from(publicKey), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }) as string;
    return { key: toKeyInfo(result.key ?? {}), publicKey, publicKeyPem };
  }

  /** Imports a key wrapped as RSA-OAEP-SHA256 + AES-KWP (the Vault / cloud KMS BYOK format). */
  async importWrappedKey(spec: ImportWrappedKeySpec, options?: CallOptions): Promise<KeyInfo> {
    const result = await this.call(
      'importWrappedKey',
      {
        spec: specToProto(spec),
        wrappingKeyId: spec.wrappingKeyId ?? '',
        wrappedKey: spec.wrappedKey,
        format: enumValue(KEY_FORMATS, spec.format, 'key format'),
      },
      options,
    );
    return toKeyInfo(result);
  }

  /** An extractable key, wrapped as RSA-OAEP-SHA256 + AES-KWP for `to`. */
  async exportWrappedKey(keyId: string, to: WrapTarget, options: ExportWrappedOptions = {}): Promise<Uint8Array> {
    const target = 'wrappingKeyId' in to ? { wrappingKeyId: to.wrappingKeyId } : { wrappingPublicKey: publicKeyBytes(to.publicKey, 'publicKey') };
    const result = await this.call('exportWrappedKey', { keyId, ...target, format: enumValue(KEY_FORMATS, options.format, 'key format') }, options);
    return bytesOf(result.wrappedKey);
  }

  /**
   * Changes this user's password. The old one is checked like a login (a
   * wrong one counts as a failed login: backoff, then lockout). Keys and
   * every session, this one included, stay valid. Strings are encoded and
   * zeroed here; Uint8Arrays stay the caller's to zero.
   */
  async changePassword(oldPassword: string | Uint8Array, newPassword: string | Uint8Array, options?: CallOptions): Promise<void> {
    const old = passwordBytes(oldPassword);
    const replacement = passwordBytes(newPassword);
    try {
      await this.call('changePassword', { oldPassword: old.bytes, newPassword: replacement.bytes }, options);
    } finally {
      old.release();
      replacement.release();
    }
  }

  /** Stores an X.509 certificate (DER) next to the user's keys; `id` (CKA_ID) pairs it with a key. */
  async createCertificate(certificate: NewCertificate, options?: CallOptions): Promise<CertificateInfo> {
    const result = await this.call('createCertificate', { id: certificate.id, label: certificate.label ?? '', der: certificate.der }, options);
    return toCertificateInfo(result);
  }

  /** Deletes a certificate by its server-chosen id (OBJECT_NOT_FOUND if there is none). */
  async deleteCertificate(certId: string, options?: CallOptions): Promise<void> {
    await this.call('deleteCertificate', { certId }, options);
  }

  /** Ends the session on the server (its unwrapped keys are wiped there). Idempotent. */
  async logout(options?: CallOptions): Promise<void> {
    if (!this.sessionId) return;
    try {
      await this.call('logout', {}, options);
    } finally {
      this.end();
    }
  }

  private async call<K extends OperationName>(op: K, body: NonNullable<pb.Request.$Properties[K]>, options?: CallOptions) {
    if (!this.sessionId) throw new VhsmError('SESSION_INVALID', 'session has been logged out');
    try {
      return await this.client.call(op, body, this.sessionId, options);
    } catch (error) {
      // The server no longer knows this session (expired, user removed): stop using it.
      if (error instanceof VhsmError && error.code === 'SESSION_INVALID') this.end();
      throw error;
    }
  }

  private end(): void {
    if (!this.sessionId) return;
    this.sessionId.fill(0);
    this.sessionId = null;
    this.onEnd(this);
  }
}
