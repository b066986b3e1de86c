/**
 * Password → master key: PBKDF2-HMAC-SHA256, 32 bytes, run on the libuv
 * thread pool so the event loop keeps serving other containers meanwhile.
 */
import { pbkdf2, randomBytes } from 'node:crypto';

/** ARCHITECTURE §5 and OWASP 2023 for PBKDF2-HMAC-SHA256. */
export const DEFAULT_PBKDF2_ITERATIONS = 600_000;
export const SALT_BYTES = 16;
/** Smallest count accepted anywhere (tests use small counts; production uses the default). */
export const MIN_PBKDF2_ITERATIONS = 1_000;
export const MAX_PBKDF2_ITERATIONS = 100_000_000;

/** The caller owns the returned buffer and must zero it after use. */
export function deriveMasterKey(password: Uint8Array, salt: Uint8Array, iterations: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, iterations, 32, 'sha256', (error, key) => (error ? reject(error) : resolve(key)));
  });
}

export function newSalt(): Buffer {
  return randomBytes(SALT_BYTES);
}
