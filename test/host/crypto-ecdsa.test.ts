/**
 * ECDSA on P-256, P-384, P-521 and secp256k1 with SHA-256/384/512, DER and
 * raw r||s, over messages and over pre-computed digests, cross-checked with
 * @noble/curves both ways (server signs → noble verifies; noble signs →
 * server verifies), and against node:crypto with the exported public key.
 */
import t from 'tap';
import { createPublicKey, generateKeyPairSync, randomBytes, verify as nodeVerify } from 'node:crypto';
import type { ECDSA } from '@noble/curves/abstract/weierstrass.js';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import type { KeyTypeName, SignatureAlgorithmName } from '../../client/index.js';
import { expectCode } from './helpers/expect.js';
import { aliceSession, jwkPoint } from './helpers/crypto-session.js';

interface CurveCase {
  readonly type: KeyTypeName;
  readonly noble: ECDSA;
  readonly nodeCurve: string;
  readonly size: number;
  readonly lowS: boolean;
}

const CURVES: readonly CurveCase[] = [
  { type: 'ec-p256', noble: p256, nodeCurve: 'P-256', size: 32, lowS: false },
  { type: 'ec-p384', noble: p384, nodeCurve: 'P-384', size: 48, lowS: false },
  { type: 'ec-p521', noble: p521, nodeCurve: 'P-521', size: 66, lowS: false },
  { type: 'ec-secp256k1', noble: secp256k1, nodeCurve: 'secp256k1', size: 32, lowS: true },
];

const HASHES: readonly { readonly algorithm: SignatureAlgorithmName; readonly hash: (m: Uint8Array) => Uint8Array; readonly node: string }[] = [
  { algorithm: 'ecdsa-sha256', hash: sha256, node: 'sha256' },
  { algorithm: 'ecdsa-sha384', hash: sha384, node: 'sha384' },
  { algorithm: 'ecdsa-sha512', hash: sha512, node: 'sha512' },
];

const messages = [0, 55, 1000, 30_000].map((size) => randomBytes(size));

for (const curve of CURVES) {
  t.test(`${curve.type}: server signatures verify with @noble/curves and node:crypto`, async (t) => {
    const { session } = await aliceSession(t);
    const key = await session.generateKey({ type: curve.type });
    const point = jwkPoint(await session.publicKey(key.keyId, 'jwk'));
    const spki = createPublicKey({ key: Buffer.from(await session.publicKey(key.keyId)), format: 'der', type: 'spki' });
    t.equal(spki.asymmetricKeyDetails?.namedCurve, { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1', secp256k1: 'secp256k1' }[curve.nodeCurve]);
    const opts = { prehash: false, lowS: curve.lowS } as const;

    // Concurrently: replies wait for their audit rows, and group commit batches concurrent ones.
    const cases = HASHES.flatMap((h) => messages.map((message) => ({ ...h, message })));
    await Promise.all(cases.map(async ({ algorithm, hash, node, message }) => {
      const digest = hash(message);
      const [der, raw] = await Promise.all([session.sign(key.keyId, message, { algorithm }), session.sign(key.keyId, message, { algorithm, encoding: 'raw' })]);
      t.equal(raw.length, 2 * curve.size, `${algorithm} raw is r||s (${message.length} bytes)`);
      t.ok(curve.noble.verify(der, digest, point, { ...opts, format: 'der' }), `@noble verifies ${algorithm} DER${curve.lowS ? ' (low-S enforced)' : ''}`);
      t.ok(curve.noble.verify(raw, digest, point, { ...opts, format: 'compact' }), `@noble verifies ${algorithm} raw`);
      t.ok(nodeVerify(node, message, spki, der), 'node:crypto verifies with the exported SPKI');

      const preDer = await session.sign(key.keyId, digest, { algorithm, prehashed: true });
      const preRaw = await session.sign(key.keyId, digest, { algorithm, prehashed: true, encoding: 'raw' });
      t.ok(curve.noble.verify(preDer, digest, point, { ...opts, format: 'der' }), `prehashed ${algorithm} DER verifies with @noble`);
      t.ok(curve.noble.verify(preRaw, digest, point, { ...opts, format: 'compact' }), `prehashed ${algorithm} raw verifies with @noble`);
      t.ok(nodeVerify(node, message, spki, preDer), 'a signature over the digest is a signature over the message');
      t.equal(await session.verify(key.keyId, message, preDer, { algorithm }), true, 'the server agrees (message form)');
      t.equal(await session.verify(key.keyId, digest, der, { algorithm, prehashed: true }), true, 'and the other way (digest form)');
    }));
    const message = messages[2]!;
    const signature = await session.sign(key.keyId, message);
    t.equal(await session.verify(key.keyId, Buffer.concat([message, Buffer.of(0)]), signature), false, 'another message does not verify');
    t.equal(await session.verify(key.keyId, message, randomBytes(2 * curve.size), { encoding: 'raw' }), false, 'random r||s does not verify');
    await expectCode(t, session.sign(key.keyId, randomBytes(31), { algorithm: 'ecdsa-sha256', prehashed: true }), 'INVALID_ARGUMENT', 'a prehash of the wrong length');
    await expectCode(t, session.verify(key.keyId, randomBytes(48), signature, { algorithm: 'ecdsa-sha512', prehashed: true }), 'INVALID_ARGUMENT', 'verify too');
  });

  t.test(`${curve.type}: @noble signatures with an imported key verify on the server`, async (t) => {
    const { session } = await aliceSession(t);
    const scalar = curve.noble.utils.randomSecretKey();
    const raw = await session.importKey({ type: curve.type, format: 'raw', keyData: scalar, extractable: true });
    t.same(Buffer.from(jwkPoint(await session.publicKey(raw.keyId, 'jwk'))), Buffer.from(curve.noble.getPublicKey(scalar, false)), 'same public key as @noble');
    t.same(Buffer.from(await session.exportKey(raw.keyId, 'raw')), Buffer.from(scalar), 'the raw scalar exports back');
    const pkcs8 = await session.exportKey(raw.keyId, 'pkcs8-der');
    const viaPkcs8 = await session.importKey({ type: curve.type, format: 'pkcs8-der', keyData: pkcs8 });

    const cases = HASHES.flatMap((h) => messages.slice(0, 3).map((message) => ({ ...h, message })));
    await Promise.all(cases.map(async ({ algorithm, hash, message }) => {
      const digest = hash(message);
      const der = curve.noble.sign(digest, scalar, { prehash: false, format: 'der' });
      const compact = curve.noble.sign(digest, scalar, { prehash: false, format: 'compact' });
      t.equal(await session.verify(raw.keyId, message, der, { algorithm }), true, `@noble ${algorithm} DER verifies (${message.length} bytes)`);
      t.equal(await session.verify(viaPkcs8.keyId, message, compact, { algorithm, encoding: 'raw' }), true, `@noble ${algorithm} compact verifies as raw`);
      t.equal(await session.verify(raw.keyId, digest, der, { algorithm, prehashed: true }), true, 'and as a prehashed input');
    }));
  });
}

t.test('secp256k1: signatures are normalised to low S; high-S still verifies (plain ECDSA)', async (t) => {
  const { session } = await aliceSession(t);
  const scalar = secp256k1.utils.randomSecretKey();
  const key = await session.importKey({ type: 'ec-secp256k1', format: 'raw', keyData: scalar });
  const n = secp256k1.Point.Fn.ORDER;
  await Promise.all(Array.from({ length: 16 }, async (_, i) => {
    const message = randomBytes(40);
    const signature = secp256k1.Signature.fromBytes(await session.sign(key.keyId, message, { encoding: 'raw' }), 'compact');
    t.notOk(signature.hasHighS(), `signature ${i} has low S`);
    const high = new secp256k1.Signature(signature.r, n - signature.s).toBytes('compact');
    t.equal(await session.verify(key.keyId, message, high, { encoding: 'raw' }), true, 'its high-S twin verifies too');
  }));
});

t.test('P-256 keys from node:crypto import as PKCS#8; mismatched curves are refused', async (t) => {
  const { session } = await aliceSession(t);
  const p384key = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'der', type: 'pkcs8' });
  await expectCode(t, session.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: p384key }), 'WRONG_KEY_TYPE', 'a P-384 key as ec-p256');
  await expectCode(t, session.importKey({ type: 'ec-p521', format: 'raw', keyData: randomBytes(32) }), 'INVALID_ARGUMENT', 'a 32-byte scalar as ec-p521');
  await expectCode(t, session.importKey({ type: 'ec-p256', format: 'raw', keyData: new Uint8Array(32) }), 'INVALID_ARGUMENT', 'scalar 0');
  const order = Buffer.from(p256.Point.Fn.ORDER.toString(16).padStart(64, '0'), 'hex');
  await expectCode(t, session.importKey({ type: 'ec-p256', format: 'raw', keyData: order }), 'INVALID_ARGUMENT', 'scalar n');
  const ed = await session.generateKey({ type: 'ed25519' });
  await expectCode(t, session.sign(ed.keyId, randomBytes(8), { algorithm: 'ecdsa-sha256' }), 'WRONG_KEY_TYPE', 'ECDSA with an Ed25519 key');
});
