/**
 * ecdsa-digest (PKCS#11 CKM_ECDSA): ECDSA over a caller's digest of 1..64
 * bytes on every curve, DER and raw. Server signatures verify with
 * @noble/curves (prehash: false) and, where the digest is a hash OpenSSL
 * knows (SHA-1, SHA-224, SHA-256/384/512 of a message), with node:crypto
 * over the message — OpenSSL truncating the hash to the group order itself.
 * The truncation is also checked explicitly: a digest longer than the order
 * signs as its leftmost order-length bytes. @noble signatures verify on the
 * server.
 */
import t from 'tap';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, verify as nodeVerify } from 'node:crypto';
import type { ECDSA } from '@noble/curves/abstract/weierstrass.js';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { KeyTypeName } from '../../client/index.js';
import { expectCode } from './helpers/expect.js';
import { aliceSession, flipped, jwkPoint } from './helpers/crypto-session.js';

interface CurveCase {
  readonly type: KeyTypeName;
  readonly noble: ECDSA;
  /** Bytes of r and s, and of the group order when it is a whole number of bytes. */
  readonly size: number;
  readonly orderBits: number;
  readonly lowS: boolean;
}

const CURVES: readonly CurveCase[] = [
  { type: 'ec-p256', noble: p256, size: 32, orderBits: 256, lowS: false },
  { type: 'ec-p384', noble: p384, size: 48, orderBits: 384, lowS: false },
  { type: 'ec-p521', noble: p521, size: 66, orderBits: 521, lowS: false },
  { type: 'ec-secp256k1', noble: secp256k1, size: 32, orderBits: 256, lowS: true },
];

/** Digest lengths PKCS#11 callers send, and the hash OpenSSL would make them with (none for 1 byte). */
const LENGTHS: readonly { readonly bytes: number; readonly hash?: string }[] = [
  { bytes: 1 },
  { bytes: 20, hash: 'sha1' },
  { bytes: 28, hash: 'sha224' },
  { bytes: 32, hash: 'sha256' },
  { bytes: 48, hash: 'sha384' },
  { bytes: 64, hash: 'sha512' },
];

/** The digest ECDSA really uses when it is longer than the order: its leftmost bits (whole bytes for these orders). */
function truncated(curve: CurveCase, digest: Uint8Array): Uint8Array | undefined {
  return digest.length * 8 > curve.orderBits && curve.orderBits % 8 === 0 ? digest.subarray(0, curve.orderBits / 8) : undefined;
}

for (const curve of CURVES) {
  t.test(`${curve.type}: ecdsa-digest signatures verify with @noble/curves and node:crypto`, async (t) => {
    const { session } = await aliceSession(t);
    const key = await session.generateKey({ type: curve.type });
    const point = jwkPoint(await session.publicKey(key.keyId, 'jwk'));
    const spki = createPublicKey({ key: Buffer.from(await session.publicKey(key.keyId)), format: 'der', type: 'spki' });
    const opts = { prehash: false, lowS: curve.lowS } as const;

    await Promise.all(
      LENGTHS.map(async ({ bytes, hash }) => {
        const message = randomBytes(100);
        const digest = hash ? createHash(hash).update(message).digest() : randomBytes(bytes);
        t.equal(digest.length, bytes, `a ${bytes}-byte digest`);
        const der = await session.sign(key.keyId, digest, { algorithm: 'ecdsa-digest' });
        const raw = await session.sign(key.keyId, digest, { algorithm: 'ecdsa-digest', encoding: 'raw' });
        t.equal(raw.length, 2 * curve.size, `${bytes} bytes: raw is r||s`);
        t.ok(curve.noble.verify(der, digest, point, { ...opts, format: 'der' }), `${bytes} bytes: @noble verifies the DER signature`);
        t.ok(curve.noble.verify(raw, digest, point, { ...opts, format: 'compact' }), `${bytes} bytes: @noble verifies the raw signature`);
        const cut = truncated(curve, digest);
        if (cut) t.ok(curve.noble.verify(der, cut, point, { ...opts, format: 'der' }), `${bytes} bytes: it is the signature of the leftmost ${cut.length} bytes`);
        if (hash) t.ok(nodeVerify(hash, message, spki, der), `${bytes} bytes: node:crypto verifies it as ECDSA-${hash} over the message`);

        t.equal(await session.verify(key.keyId, digest, der, { algorithm: 'ecdsa-digest' }), true, `${bytes} bytes: the server verifies its own`);
        t.equal(await session.verify(key.keyId, digest, raw, { algorithm: 'ecdsa-digest', encoding: 'raw' }), true, `${bytes} bytes: raw too`);
        t.equal(await session.verify(key.keyId, flipped(digest, 0, 7), der, { algorithm: 'ecdsa-digest' }), false, `${bytes} bytes: not for another digest`);
        t.equal(await session.verify(key.keyId, digest, flipped(raw, raw.length - 1), { algorithm: 'ecdsa-digest', encoding: 'raw' }), false, `${bytes} bytes: not with a flipped bit`);
      }),
    );

    // The same digest through the named algorithms' prehashed path: the two agree both ways.
    const digest = createHash('sha256').update('agree').digest();
    const viaDigest = await session.sign(key.keyId, digest, { algorithm: 'ecdsa-digest' });
    const viaPrehashed = await session.sign(key.keyId, digest, { algorithm: 'ecdsa-sha256', prehashed: true });
    t.equal(await session.verify(key.keyId, digest, viaDigest, { algorithm: 'ecdsa-sha256', prehashed: true }), true, 'ecdsa-digest verifies as prehashed ecdsa-sha256');
    t.equal(await session.verify(key.keyId, digest, viaPrehashed, { algorithm: 'ecdsa-digest' }), true, 'and the other way');
    t.equal(await session.verify(key.keyId, Buffer.from('agree'), viaDigest, { algorithm: 'ecdsa-sha256' }), true, 'and as ecdsa-sha256 over the message');
    t.equal(await session.verify(key.keyId, digest, randomBytes(20), { algorithm: 'ecdsa-digest' }), false, 'malformed DER is simply invalid');
  });

  t.test(`${curve.type}: @noble ecdsa-digest signatures verify on the server`, async (t) => {
    const { session } = await aliceSession(t);
    const scalar = curve.noble.utils.randomSecretKey();
    const key = await session.importKey({ type: curve.type, format: 'raw', keyData: scalar });
    await Promise.all(
      LENGTHS.map(async ({ bytes }) => {
        const digest = randomBytes(bytes);
        const der = curve.noble.sign(digest, scalar, { prehash: false, format: 'der' });
        const compact = curve.noble.sign(digest, scalar, { prehash: false, format: 'compact' });
        t.equal(await session.verify(key.keyId, digest, der, { algorithm: 'ecdsa-digest' }), true, `${bytes} bytes: @noble DER verifies`);
        t.equal(await session.verify(key.keyId, digest, compact, { algorithm: 'ecdsa-digest', encoding: 'raw' }), true, `${bytes} bytes: @noble compact verifies as raw`);
        const cut = truncated(curve, digest);
        if (cut) {
          const ofCut = curve.noble.sign(cut, scalar, { prehash: false, format: 'der' });
          t.equal(await session.verify(key.keyId, digest, ofCut, { algorithm: 'ecdsa-digest' }), true, `${bytes} bytes: a signature of the leftmost ${cut.length} bytes verifies`);
        }
      }),
    );
  });
}

t.test('ecdsa-digest refusals: digest length, prehashed, key type, usage', async (t) => {
  const { session } = await aliceSession(t);
  const ec = await session.generateKey({ type: 'ec-p256' });
  const signature = await session.sign(ec.keyId, randomBytes(20), { algorithm: 'ecdsa-digest' });
  await expectCode(t, session.sign(ec.keyId, new Uint8Array(0), { algorithm: 'ecdsa-digest' }), 'INVALID_ARGUMENT', 'an empty digest');
  await expectCode(t, session.sign(ec.keyId, randomBytes(65), { algorithm: 'ecdsa-digest' }), 'INVALID_ARGUMENT', 'a 65-byte digest');
  await expectCode(t, session.verify(ec.keyId, randomBytes(65), signature, { algorithm: 'ecdsa-digest' }), 'INVALID_ARGUMENT', 'verify: a 65-byte digest');
  await expectCode(t, session.sign(ec.keyId, randomBytes(32), { algorithm: 'ecdsa-digest', prehashed: true }), 'INVALID_ARGUMENT', 'prehashed: there is no hash to name');
  const ed = await session.generateKey({ type: 'ed25519' });
  await expectCode(t, session.sign(ed.keyId, randomBytes(32), { algorithm: 'ecdsa-digest' }), 'WRONG_KEY_TYPE', 'an Ed25519 key');
  const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'der', type: 'pkcs8' });
  const rsa = await session.importKey({ type: 'rsa-2048', format: 'pkcs8-der', keyData: rsaKey });
  await expectCode(t, session.sign(rsa.keyId, randomBytes(32), { algorithm: 'ecdsa-digest' }), 'WRONG_KEY_TYPE', 'an RSA key');
  const verifyOnly = await session.importKey({ type: 'ec-p256', format: 'raw', keyData: p256.utils.randomSecretKey(), usages: ['verify'] });
  await expectCode(t, session.sign(verifyOnly.keyId, randomBytes(32), { algorithm: 'ecdsa-digest' }), 'USAGE_NOT_ALLOWED', 'a key without usage sign');
  t.equal(await session.verify(verifyOnly.keyId, randomBytes(32), signature, { algorithm: 'ecdsa-digest' }), false, 'it still verifies (usage verify)');
  const signOnly = await session.importKey({ type: 'ec-p256', format: 'raw', keyData: p256.utils.randomSecretKey(), usages: ['sign'] });
  await expectCode(t, session.verify(signOnly.keyId, randomBytes(32), signature, { algorithm: 'ecdsa-digest' }), 'USAGE_NOT_ALLOWED', 'verify needs usage verify');
});
