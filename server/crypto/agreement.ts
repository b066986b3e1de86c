/**
 * Key agreement: ECDH on P-256, P-384, P-521 and X25519, through
 * node:crypto's diffieHellman. The shared secret is the x coordinate (ECDH)
 * or the X25519 output, as SP 800-56A / RFC 7748 define it.
 *
 * Peer keys: SPKI DER, or raw (an uncompressed or compressed EC point; the
 * 32-byte X25519 u coordinate). OpenSSL checks that EC points are on the
 * curve (the NIST curves have cofactor 1, so that is all it takes) and
 * refuses X25519 inputs that give the all-zero secret (small-order points).
 */
import { createPublicKey, diffieHellman, ECDH, type KeyObject } from 'node:crypto';
import { KEY_TYPES } from '../../proto/index.js';
import { VhsmFailure } from '../errors.js';
import { P256, P384, P521, type EcCurve } from './ec-curves.js';
import { invalid, must, type KeyRef } from './key-material.js';

type Party = { readonly kind: 'ec'; readonly curve: EcCurve } | { readonly kind: 'x25519' };

const PARTIES: ReadonlyMap<number, Party> = new Map<number, Party>([
  [KEY_TYPES['ec-p256'], { kind: 'ec', curve: P256 }],
  [KEY_TYPES['ec-p384'], { kind: 'ec', curve: P384 }],
  [KEY_TYPES['ec-p521'], { kind: 'ec', curve: P521 }],
  [KEY_TYPES.x25519, { kind: 'x25519' }],
]);

export function supportsAgreement(keyType: number): boolean {
  return PARTIES.has(keyType);
}

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

function parseEcPoint(curve: EcCurve, bytes: Uint8Array): KeyObject {
  // convertKey validates the point and decompresses it: 04 || x || y.
  const point = ECDH.convertKey(bytes, curve.nodeName, undefined, undefined, 'uncompressed') as Buffer;
  const size = (point.length - 1) / 2;
  return createPublicKey({
    key: { kty: 'EC', crv: curve.jwkName, x: b64url(point.subarray(1, 1 + size)), y: b64url(point.subarray(1 + size)) },
    format: 'jwk',
  });
}

function parsePeer(party: Party, bytes: Uint8Array): KeyObject {
  const spki = bytes[0] === 0x30 && !(party.kind === 'x25519' && bytes.length === 32);
  if (spki) return createPublicKey({ key: Buffer.from(bytes), format: 'der', type: 'spki' });
  if (party.kind === 'x25519') {
    if (bytes.length !== 32) throw new RangeError('X25519 public keys are 32 bytes');
    return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(bytes) }, format: 'jwk' });
  }
  return parseEcPoint(party.curve, bytes);
}

/** The peer's public key, checked to be on the private key's curve. */
export function peerPublicKey(keyType: number, bytes: Uint8Array): KeyObject {
  const party = PARTIES.get(keyType);
  if (!party) throw new VhsmFailure('WRONG_KEY_TYPE', 'this key type does not do key agreement');
  const what = party.kind === 'x25519' ? 'X25519' : party.curve.jwkName;
  let peer: KeyObject;
  try {
    peer = parsePeer(party, bytes);
  } catch {
    throw invalid(`peer_public_key is not a valid ${what} public key (SPKI DER or raw)`);
  }
  const matches =
    party.kind === 'x25519'
      ? peer.asymmetricKeyType === 'x25519'
      : peer.asymmetricKeyType === 'ec' && peer.asymmetricKeyDetails?.namedCurve === party.curve.nodeName;
  if (!matches) throw invalid(`peer_public_key is not a ${what} public key`);
  return peer;
}

/** The raw shared secret; the caller zeroes it. */
export function agree(key: KeyRef, peer: KeyObject): Buffer {
  try {
    return diffieHellman({ privateKey: must(key.loaded.privateKey, 'private key'), publicKey: peer });
  } catch {
    throw invalid('key agreement failed: the peer public key is not acceptable');
  }
}
