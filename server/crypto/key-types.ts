/**
 * The key-type table: one row per KeyType, defined in keys-*.ts. Adding a
 * type means adding a row here; nothing else needs to change to accept it.
 */
import { ecP256, ecP384, ecP521, ecSecp256k1 } from './keys-ec.js';
import { ed25519, x25519 } from './keys-okp.js';
import { rsa2048, rsa3072, rsa4096 } from './keys-rsa.js';
import { aes256, chacha20, hmac, secret } from './keys-secret.js';
import type { KeyTypeSpec } from './key-material.js';

export { MAX_KEY_DATA_BYTES, type KeyTypeSpec, type LoadedKey } from './key-material.js';

const KEY_TYPE_TABLE: ReadonlyMap<number, KeyTypeSpec> = new Map(
  [ecP256, ed25519, hmac, ecP384, ecP521, ecSecp256k1, rsa2048, rsa3072, rsa4096, aes256, chacha20, x25519, secret].map((spec) => [spec.type, spec]),
);

export function keyTypeSpec(type: number): KeyTypeSpec | undefined {
  return KEY_TYPE_TABLE.get(type);
}
