/**
 * VhsmSession: a logged-in session, usable only from the process that
 * opened it. Key handles are key ids (strings); data is Uint8Array in and
 * out.
 */
import type { JsonWebKey } from 'node:crypto';
import {
  DIGEST_ALGORITHMS,
  KEY_FORMATS,
  KEY_TYPES,
  KEY_USAGES,
  MAC_ALGORITHMS,
  PUBLIC_KEY_FORMATS,
  SIGNATURE_ALGORITHMS,
  SIGNATURE_ENCODINGS,
  nameOf,
  uint64ToSafeNumber,
  type KeyFormatName,
  type OperationName,
  type PublicKeyFormatName,
  type pb,
} from '../proto/index.js';
import type { VhsmClient } from './client.js';
import { VhsmError } from './errors.js';
import type { CallOptions, DigestOptions, GenerateKeySpec, ImportKeySpec, KeyInfo, KeySpec, MacOptions, SignOptions } from './types.js';

const decoder = new TextDecoder();

function toKeyInfo(info: pb.KeyInfo.$Properties): KeyInfo {
  const lastUsed = uint64ToSafeNumber(info.lastUsedMs) ?? 0;
  return {
    keyId: info.keyId ?? '',
    type: nameOf(KEY_TYPES, info.type ?? 0) ?? 'unknown',
    label: info.label ?? '',
    usages: (info.usages ?? []).map((usage) => nameOf(KEY_USAGES, usage) ?? 'unknown'),
    extractable: info.extractable === true,
    createdAt: new Date(uint64ToSafeNumber(info.createdMs) ?? 0),
    lastUsedAt: lastUsed ? new Date(lastUsed) : null,
    useCount: uint64ToSafeNumber(info.useCount) ?? 0,
    lengthBytes: info.lengthBytes ?? 0,
  };
}

function specToProto(spec: KeySpec): pb.KeySpec.$Properties {
  return {
    type: KEY_TYPES[spec.type],
    keyId: spec.keyId ?? '',
    label: spec.label ?? '',
    usages: (spec.usages ?? []).map((usage) => KEY_USAGES[usage]),
    extractable: spec.extractable ?? false,
  };
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
      },
      options,
    );
    return result.valid === true;
  }

  async mac(keyId: string, data: Uint8Array, options: MacOptions = {}): Promise<Uint8Array> {
    const result = await this.call('mac', { keyId, data, algorithm: enumValue(MAC_ALGORITHMS, options.algorithm, 'MAC algorithm') }, options);
    return new Uint8Array(result.mac ?? new Uint8Array(0));
  }

  async verifyMac(keyId: string, data: Uint8Array, mac: Uint8Array, options: MacOptions = {}): Promise<boolean> {
    const result = await this.call(
      'verifyMac',
      { keyId, data, mac, algorithm: enumValue(MAC_ALGORITHMS, options.algorithm, 'MAC algorithm') },
      options,
    );
    return result.valid === true;
  }

  async digest(data: Uint8Array, options: DigestOptions = {}): Promise<Uint8Array> {
    const result = await this.call('digest', { data, algorithm: enumValue(DIGEST_ALGORITHMS, options.algorithm, 'digest algorithm') }, options);
    return new Uint8Array(result.digest ?? new Uint8Array(0));
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
