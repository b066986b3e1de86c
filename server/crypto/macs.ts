/**
 * MAC mechanisms over stored secret keys: HMAC with SHA-256/384/512, one-shot
 * or as a streaming context. Verification compares in constant time.
 */
import { createHmac, timingSafeEqual, type Hmac } from 'node:crypto';
import { KEY_TYPES, MAC_ALGORITHMS, type MacAlgorithmName } from '../../proto/index.js';
import { SHA256, SHA384, SHA512, type HashInfo } from './hashes.js';
import { must, type LoadedKey } from './key-material.js';

export interface MacMechanism {
  readonly algorithm: number;
  readonly name: MacAlgorithmName;
  readonly keyTypes: ReadonlySet<number>;
  readonly outputBytes: number;
  compute(key: LoadedKey, data: Uint8Array): Uint8Array;
  /** A streaming context: update(...) then digest(). */
  start(key: LoadedKey): Hmac;
}

export const MAX_MAC_BYTES = 64;

function hmacMechanism(name: MacAlgorithmName, hash: HashInfo): MacMechanism {
  const start = (key: LoadedKey): Hmac => createHmac(hash.nodeName, must(key.secretKey, 'secret'));
  return {
    algorithm: MAC_ALGORITHMS[name],
    name,
    keyTypes: new Set([KEY_TYPES.hmac]),
    outputBytes: hash.outputBytes,
    compute: (key, data) => start(key).update(data).digest(),
    start,
  };
}

const MAC_TABLE: ReadonlyMap<number, MacMechanism> = new Map(
  [hmacMechanism('hmac-sha256', SHA256), hmacMechanism('hmac-sha384', SHA384), hmacMechanism('hmac-sha512', SHA512)].map((row) => [row.algorithm, row]),
);

export function macMechanism(algorithm: number): MacMechanism | undefined {
  return MAC_TABLE.get(algorithm);
}

/** Constant-time for equal lengths; a length mismatch is public information anyway. */
export function macsEqual(expected: Uint8Array, given: Uint8Array): boolean {
  return expected.length === given.length && timingSafeEqual(expected, given);
}
