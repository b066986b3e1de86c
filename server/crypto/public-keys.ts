/**
 * Public key export: SPKI DER, SPKI PEM, or JWK (UTF-8 JSON).
 */
import { PUBLIC_KEY_FORMATS } from '../../proto/index.js';
import { VhsmFailure } from '../errors.js';
import type { LoadedKey } from './key-types.js';

/** SubjectPublicKeyInfo DER of a key pair, null for a secret key. */
export function spkiDerOf(key: LoadedKey): Buffer | null {
  return key.publicKey ? key.publicKey.export({ type: 'spki', format: 'der' }) : null;
}

export function exportPublicKey(key: LoadedKey, format: number): Uint8Array {
  const publicKey = key.publicKey;
  if (!publicKey) throw new VhsmFailure('WRONG_KEY_TYPE', 'secret keys have no public key');
  switch (format) {
    case PUBLIC_KEY_FORMATS['spki-der']:
      return spkiDerOf(key)!;
    case PUBLIC_KEY_FORMATS['spki-pem']:
      return Buffer.from(publicKey.export({ type: 'spki', format: 'pem' }) as string, 'utf8');
    case PUBLIC_KEY_FORMATS.jwk:
      return Buffer.from(JSON.stringify(publicKey.export({ format: 'jwk' })), 'utf8');
    default:
      throw new VhsmFailure('INVALID_ARGUMENT', 'unknown public key format');
  }
}
