/**
 * Digest mechanisms: SHA-2 and SHA-3 through node:crypto, one-shot or as a
 * streaming context.
 */
import { createHash, type Hash } from 'node:crypto';
import { DIGEST_ALGORITHMS, type DigestAlgorithmName } from '../../proto/index.js';
import { SHA256, SHA3_256, SHA3_512, SHA384, SHA512, type HashInfo } from './hashes.js';

export interface DigestMechanism {
  readonly algorithm: number;
  readonly name: DigestAlgorithmName;
  readonly outputBytes: number;
  digest(data: Uint8Array): Uint8Array;
  /** A streaming context: update(...) then digest(). */
  start(): Hash;
}

function nodeHash(name: DigestAlgorithmName, hash: HashInfo): DigestMechanism {
  return {
    algorithm: DIGEST_ALGORITHMS[name],
    name,
    outputBytes: hash.outputBytes,
    digest: (data) => createHash(hash.nodeName).update(data).digest(),
    start: () => createHash(hash.nodeName),
  };
}

const DIGEST_TABLE: ReadonlyMap<number, DigestMechanism> = new Map(
  [nodeHash('sha256', SHA256), nodeHash('sha384', SHA384), nodeHash('sha512', SHA512), nodeHash('sha3-256', SHA3_256), nodeHash('sha3-512', SHA3_512)].map(
    (row) => [row.algorithm, row],
  ),
);

export function digestMechanism(algorithm: number): DigestMechanism | undefined {
  return DIGEST_TABLE.get(algorithm);
}
