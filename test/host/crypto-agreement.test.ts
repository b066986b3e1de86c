/**
 * Key agreement (ECDH P-256/P-384/P-521, X25519) and derivation
 * (HKDF-SHA256), cross-checked with @noble/curves and @noble/hashes, the
 * RFC 7748 and RFC 5869 vectors, and the ways a peer key can be bad.
 */
import t from 'tap';
import { createPublicKey, randomBytes } from 'node:crypto';
import { gcm } from '@noble/ciphers/aes.js';
import type { ECDSA } from '@noble/curves/abstract/weierstrass.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { KeyTypeName } from '../../client/index.js';
import { expectCode } from './helpers/expect.js';
import { aliceSession, hex, jwkPoint, toHex } from './helpers/crypto-session.js';

const EC: readonly { type: KeyTypeName; noble: ECDSA }[] = [
  { type: 'ec-p256', noble: p256 },
  { type: 'ec-p384', noble: p384 },
  { type: 'ec-p521', noble: p521 },
];

/** SPKI DER of a raw public key, via node:crypto's JWK import. */
function spkiOf(jwk: Record<string, string>): Uint8Array {
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' });
}

for (const { type, noble } of EC) {
  t.test(`ECDH ${type}: the server and @noble agree, whatever the peer key's encoding`, async (t) => {
    const { session } = await aliceSession(t);
    const key = await session.generateKey({ type, usages: ['derive'] });
    const ours = jwkPoint(await session.publicKey(key.keyId, 'jwk'));
    const peerSecret = noble.utils.randomSecretKey();
    const uncompressed = noble.getPublicKey(peerSecret, false);
    const size = (uncompressed.length - 1) / 2;
    const crv = (await session.publicKey(key.keyId, 'jwk')).crv!;
    const jwk = { kty: 'EC', crv, x: Buffer.from(uncompressed.subarray(1, 1 + size)).toString('base64url'), y: Buffer.from(uncompressed.subarray(1 + size)).toString('base64url') };
    const expected = Buffer.from(noble.getSharedSecret(peerSecret, ours).subarray(1)); // x coordinate
    const encodings: [string, Uint8Array | string][] = [
      ['raw uncompressed', uncompressed],
      ['raw compressed', noble.getPublicKey(peerSecret, true)],
      ['SPKI DER', spkiOf(jwk)],
      ['PEM', createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string],
    ];
    for (const [label, peer] of encodings) {
      const result = await session.agreeKey(key.keyId, peer, { extractable: true });
      t.equal(result.key.type, 'secret', `${label}: stored as a secret key`);
      t.same(result.key.usages, ['derive'], 'usable for derivation');
      t.same(Buffer.from(result.material!), expected, `${label}: the shared secret (x coordinate, ${expected.length} bytes) equals @noble's`);
    }
    const hidden = await session.agreeKey(key.keyId, uncompressed);
    t.equal(hidden.material, null, 'not extractable: the secret is stored, not returned');
    await expectCode(t, session.exportKey(hidden.key.keyId, 'raw'), 'NOT_EXTRACTABLE', 'and cannot be exported');

    const salt = randomBytes(16);
    const info = Buffer.from('vhsm test');
    const viaKdf = await session.agreeKey(key.keyId, uncompressed, { type: 'aes-256', extractable: true, kdf: { salt, info } });
    t.same(Buffer.from(viaKdf.material!), Buffer.from(hkdf(sha256, expected, salt, info, 32)), 'ECDH + HKDF-SHA256 into an AES key matches @noble');
    t.same(viaKdf.key.usages, ['encrypt', 'decrypt'], 'with the AES defaults');

    const offCurve = Buffer.from(uncompressed);
    offCurve[offCurve.length - 1]! ^= 1;
    await expectCode(t, session.agreeKey(key.keyId, offCurve), 'INVALID_ARGUMENT', 'a point off the curve');
    await expectCode(t, session.agreeKey(key.keyId, uncompressed.subarray(1)), 'INVALID_ARGUMENT', 'a point without its prefix byte');
    await expectCode(t, session.agreeKey(key.keyId, Uint8Array.of(0)), 'INVALID_ARGUMENT', 'the point at infinity');
    const other = EC.find((row) => row.type !== type)!;
    await expectCode(t, session.agreeKey(key.keyId, other.noble.getPublicKey(other.noble.utils.randomSecretKey(), false)), 'INVALID_ARGUMENT', `a point on ${other.type}`);
    await expectCode(t, session.agreeKey(key.keyId, uncompressed, { type: 'aes-256' }), 'INVALID_ARGUMENT', 'the raw secret as an AES key (no kdf)');
    await expectCode(t, session.agreeKey(key.keyId, uncompressed, { type: 'ec-p256', kdf: {} }), 'INVALID_ARGUMENT', 'a key pair as the result');
    const signing = await session.generateKey({ type });
    await expectCode(t, session.agreeKey(signing.keyId, uncompressed), 'USAGE_NOT_ALLOWED', 'a key without derive usage');
  });
}

t.test('X25519: RFC 7748 §6.1, both ways with @noble, and bad peer keys', async (t) => {
  const { session } = await aliceSession(t);
  const alice = await session.importKey({ type: 'x25519', format: 'raw', keyData: hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a') });
  t.same(alice.usages, ['derive'], 'X25519 keys derive');
  t.equal(toHex(Buffer.from((await session.publicKey(alice.keyId, 'jwk')).x!, 'base64url')), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', "Alice's public key");
  const bobPublic = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const shared = await session.agreeKey(alice.keyId, bobPublic, { extractable: true });
  t.equal(toHex(shared.material!), '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742', 'the shared secret');

  const generated = await session.generateKey({ type: 'x25519' });
  const ours = Buffer.from((await session.publicKey(generated.keyId, 'jwk')).x!, 'base64url');
  for (let i = 0; i < 8; i++) {
    const peer = x25519.utils.randomSecretKey();
    const peerPublic = x25519.getPublicKey(peer);
    const spki = spkiOf({ kty: 'OKP', crv: 'X25519', x: Buffer.from(peerPublic).toString('base64url') });
    const result = await session.agreeKey(generated.keyId, i % 2 ? spki : peerPublic, { extractable: true });
    t.same(Buffer.from(result.material!), Buffer.from(x25519.getSharedSecret(peer, ours)), `random peer ${i} (${i % 2 ? 'SPKI' : 'raw'}): same secret as @noble`);
  }
  await expectCode(t, session.agreeKey(generated.keyId, new Uint8Array(32)), 'INVALID_ARGUMENT', 'the all-zero (small-order) point');
  await expectCode(t, session.agreeKey(generated.keyId, Buffer.concat([Buffer.of(1), Buffer.alloc(31)])), 'INVALID_ARGUMENT', 'the order-1 point u=1');
  await expectCode(t, session.agreeKey(generated.keyId, randomBytes(31)), 'INVALID_ARGUMENT', 'a 31-byte key');
  await expectCode(t, session.agreeKey(generated.keyId, p256.getPublicKey(p256.utils.randomSecretKey(), false)), 'INVALID_ARGUMENT', 'a P-256 point');
  await expectCode(t, session.generateKey({ type: 'x25519', usages: ['sign'] }), 'USAGE_NOT_ALLOWED', 'X25519 keys cannot sign');
  const ed = await session.generateKey({ type: 'ed25519' });
  await expectCode(t, session.agreeKey(ed.keyId, bobPublic), 'USAGE_NOT_ALLOWED', 'Ed25519 keys do not derive');
});

t.test('HKDF-SHA256: RFC 5869 test cases 1-3 through deriveKey', async (t) => {
  const { session } = await aliceSession(t);
  const range = (from: number, count: number): Buffer => Buffer.from(Array.from({ length: count }, (_, i) => from + i));
  const cases = [
    { ikm: Buffer.alloc(22, 0x0b), salt: range(0, 13), info: range(0xf0, 10), length: 42, okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865' },
    {
      ikm: range(0, 80),
      salt: range(0x60, 80),
      info: range(0xb0, 80),
      length: 82,
      okm: 'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
    },
    { ikm: Buffer.alloc(22, 0x0b), salt: Buffer.alloc(0), info: Buffer.alloc(0), length: 42, okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8' },
  ];
  for (const [i, c] of cases.entries()) {
    const base = await session.importKey({ type: 'secret', format: 'raw', keyData: c.ikm });
    const derived = await session.deriveKey(base.keyId, { type: 'secret', lengthBytes: c.length, extractable: true, kdf: { salt: c.salt, info: c.info } });
    t.equal(toHex(derived.material!), c.okm, `test case ${i + 1}`);
    t.equal(derived.key.lengthBytes, c.length, 'stored with that length');
  }
});

t.test('HKDF-SHA256: random inputs against @noble; derived keys work; errors', async (t) => {
  const { session } = await aliceSession(t);
  const ikm = randomBytes(48);
  const base = await session.importKey({ type: 'secret', format: 'raw', keyData: ikm });
  for (const [type, length] of [['secret', 16], ['secret', 512], ['hmac', 64], ['chacha20', 0], ['aes-256', 32]] as const) {
    const salt = randomBytes(32);
    const info = randomBytes(20);
    const derived = await session.deriveKey(base.keyId, { type, lengthBytes: length, extractable: true, kdf: { salt, info } });
    const expected = hkdf(sha256, ikm, salt, info, length || 32);
    t.same(Buffer.from(derived.material!), Buffer.from(expected), `${type}, ${length || 'default'} bytes`);
  }
  // A non-extractable AES key derived on the server encrypts what @noble, deriving the same key, can open.
  const info = Buffer.from('envelope');
  const aes = await session.deriveKey(base.keyId, { type: 'aes-256', kdf: { info } });
  t.equal(aes.material, null, 'not extractable: no material returned');
  const sealed = await session.encrypt(aes.key.keyId, Buffer.from('hello'));
  const key = hkdf(sha256, ikm, undefined, info, 32);
  t.equal(Buffer.from(gcm(key, sealed.nonce).decrypt(Buffer.concat([sealed.ciphertext, sealed.tag]))).toString(), 'hello', '@noble opens it');

  await expectCode(t, session.deriveKey(base.keyId, { type: 'aes-256', lengthBytes: 16 }), 'INVALID_ARGUMENT', 'a 16-byte AES key');
  await expectCode(t, session.deriveKey(base.keyId, { type: 'ed25519' }), 'INVALID_ARGUMENT', 'a key pair as the result');
  await expectCode(t, session.deriveKey(base.keyId, { type: 'secret', lengthBytes: 513 }), 'INVALID_ARGUMENT', 'longer than a secret key may be');
  await expectCode(t, session.deriveKey(base.keyId, { type: 'secret', kdf: { salt: randomBytes(1025) } }), 'INVALID_ARGUMENT', 'a salt over 1 KiB');
  const mac = await session.importKey({ type: 'hmac', format: 'raw', keyData: ikm.subarray(0, 32) });
  await expectCode(t, session.deriveKey(mac.keyId, { type: 'secret' }), 'USAGE_NOT_ALLOWED', 'an HMAC key is not derivation input');
  const x = await session.generateKey({ type: 'x25519' });
  await expectCode(t, session.deriveKey(x.keyId, { type: 'secret' }), 'WRONG_KEY_TYPE', 'an X25519 key is not HKDF input');
  const named = await session.deriveKey(base.keyId, { type: 'hmac', keyId: 'derived-mac', label: 'from HKDF' });
  await expectCode(t, session.deriveKey(base.keyId, { type: 'hmac', keyId: 'derived-mac' }), 'KEY_EXISTS', 'the result id is taken');
  t.equal((await session.keyInfo(named.key.keyId)).label, 'from HKDF', 'labels and ids apply to derived keys');
  t.equal((await session.keyInfo(base.keyId)).useCount, 7, 'the base key counts its successful uses only');
});
