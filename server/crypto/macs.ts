/**
 * MAC mechanisms over stored secret keys. Verification compares in constant
 * time. Issue 4 adds HMAC-SHA384/512 rows.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { KEY_TYPES, MAC_ALGORITHMS, type MacAlgorithmName } from '../../proto/index.js';
import type { LoadedKey } from './key-types.js';

export interface MacMechanism {
  readonly algorithm: number;
  readonly name: MacAlgorithmName;
  readonly keyTypes: ReadonlySet<number>;
  readonly outputBytes: number;
  compute(key: LoadedKey, data: Uint8Array): Uint8Array;
}

export const MAX_MAC_BYTES = 64;

function hmacMechanism(algorithm: number, name: MacAlgorithmName, hash: string, outputBytes: number): MacMechanism {
  return {
    algorithm,
    name,
    keyTypes: new Set([KEY_TYPES.hmac]),
    outputBytes,
    compute(key, data) {
      if (!key.secretKey) throw new Error('loaded key has no secret');
      return createHmac(hash, key.secretKey).update(data).digest();
    },
  };
}

const MAC_TABLE: ReadonlyMap<number, MacMechanism> = new Map(
  [hmacMechanism(MAC_ALGORITHMS['hmac-sha256'], 'hmac-sha256', 'sha256', 32)].map((row) => [row.algorithm, row]),
);

export function macMechanism(algorithm: number): MacMechanism | undefined {
  return MAC_TABLE.get(algorithm);
}

/** Constant-time for equal lengths; a length mismatch is public information anyway. */
export function macsEqual(expected: Uint8Array, given: Uint8Array): boolean {
  return expected.length === given.length && timingSafeEqual(expected, given);
}
