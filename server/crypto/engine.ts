/**
 * The crypto engine: node:crypto behind tables of mechanisms (with
 * @noble/curves where OpenSSL 3.0 has no API). Handlers look rows up here;
 * adding an algorithm means adding a row to one table.
 */
export { keyTypeSpec, MAX_KEY_DATA_BYTES, type KeyTypeSpec, type LoadedKey } from './key-types.js';
export type { KeyRef } from './key-material.js';
export { signatureMechanism, MAX_SIGNATURE_BYTES, type SignatureMechanism } from './signatures.js';
export { macMechanism, macsEqual, MAX_MAC_BYTES, type MacMechanism } from './macs.js';
export { digestMechanism, type DigestMechanism } from './digests.js';
export { cipherMechanism, type CipherMechanism, type Sealed } from './ciphers.js';
export { agree, peerPublicKey, supportsAgreement } from './agreement.js';
export { kdfMechanism, type KdfMechanism } from './kdfs.js';
export { parseWrappingPublicKey, unwrapTransported, wrapForTransport } from './byok.js';
export { exportPublicKey, spkiDerOf } from './public-keys.js';
export { allows, maskOf, usagesOf, type UsageMask } from './usages.js';
