/**
 * The client library's public types: string names instead of enum numbers,
 * Dates instead of epoch milliseconds.
 */
import type {
  DigestAlgorithmName,
  KeyFormatName,
  KeyTypeName,
  KeyUsageName,
  MacAlgorithmName,
  SignatureAlgorithmName,
  SignatureEncodingName,
} from '../proto/index.js';

export type {
  DigestAlgorithmName,
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
  /** Default: the key type's algorithm (ecdsa-sha256 for ec-p256, ed25519 for ed25519). */
  readonly algorithm?: SignatureAlgorithmName;
  /** ECDSA only: 'der' (default) or 'raw' (r || s). */
  readonly encoding?: SignatureEncodingName;
}

export interface MacOptions extends CallOptions {
  readonly algorithm?: MacAlgorithmName;
}

export interface DigestOptions extends CallOptions {
  readonly algorithm?: DigestAlgorithmName;
}
