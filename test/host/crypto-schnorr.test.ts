/**
 * Ed25519 (RFC 8032 vectors, node:crypto on the server) and BIP-340
 * Schnorr over secp256k1 (BIP-340 vectors; @noble on the server, so the
 * cross-check is also against node:crypto-independent vectors), both ways
 * with @noble/curves.
 */
import t from 'tap';
import { createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { expectCode } from './helpers/expect.js';
import { aliceSession, flipped, hex, MESSAGE_SIZES } from './helpers/crypto-session.js';

/** RFC 8032 §7.1, tests 1-3. */
const RFC8032 = [
  {
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
];

/** BIP-340 test vectors 0 and 1 (the ones with a secret key). */
const BIP340 = [
  {
    secret: '0000000000000000000000000000000000000000000000000000000000000003',
    publicKey: 'F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9',
    auxRand: '0000000000000000000000000000000000000000000000000000000000000000',
    message: '0000000000000000000000000000000000000000000000000000000000000000',
    signature: 'E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0',
  },
  {
    secret: 'B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF',
    publicKey: 'DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659',
    auxRand: '0000000000000000000000000000000000000000000000000000000000000001',
    message: '243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89',
    signature: '6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A',
  },
];

const messages = MESSAGE_SIZES.map((size) => randomBytes(size));

t.test('Ed25519: RFC 8032 vectors through the server', async (t) => {
  const { session } = await aliceSession(t);
  for (const [i, vector] of RFC8032.entries()) {
    const key = await session.importKey({ type: 'ed25519', format: 'raw', keyData: hex(vector.seed) });
    t.equal(Buffer.from((await session.publicKey(key.keyId, 'jwk')).x!, 'base64url').toString('hex'), vector.publicKey, `test ${i + 1}: public key`);
    t.equal(Buffer.from(await session.sign(key.keyId, hex(vector.message))).toString('hex'), vector.signature, `test ${i + 1}: signature`);
    t.equal(await session.verify(key.keyId, hex(vector.message), hex(vector.signature)), true, `test ${i + 1}: verifies`);
    t.equal(await session.verify(key.keyId, hex(vector.message), flipped(hex(vector.signature), 63, 4)), false, `test ${i + 1}: a flipped bit does not`);
  }
});

t.test('Ed25519: server and @noble both ways over random messages', async (t) => {
  const { session } = await aliceSession(t);
  const generated = await session.generateKey({ type: 'ed25519' });
  const publicKey = Buffer.from((await session.publicKey(generated.keyId, 'jwk')).x!, 'base64url');
  const spki = createPublicKey({ key: Buffer.from(await session.publicKey(generated.keyId)), format: 'der', type: 'spki' });
  const seed = ed25519.utils.randomSecretKey();
  const imported = await session.importKey({ type: 'ed25519', format: 'raw', keyData: seed });
  await Promise.all(
    messages.map(async (message) => {
      const signature = await session.sign(generated.keyId, message);
      t.ok(ed25519.verify(signature, message, publicKey), `@noble verifies (${message.length} bytes)`);
      t.ok(nodeVerify(null, message, spki, signature), 'node:crypto verifies with the SPKI');
      const theirs = ed25519.sign(message, seed);
      t.same(Buffer.from(await session.sign(imported.keyId, message)), Buffer.from(theirs), 'deterministic: identical to @noble');
      t.equal(await session.verify(imported.keyId, message, theirs), true, '@noble signature verifies on the server');
    }),
  );
  await expectCode(t, session.sign(generated.keyId, randomBytes(32), { prehashed: true }), 'INVALID_ARGUMENT', 'Ed25519 takes no prehashed input');
});

t.test('BIP-340: vectors through the server', async (t) => {
  const { session } = await aliceSession(t);
  for (const [i, vector] of BIP340.entries()) {
    const key = await session.importKey({ type: 'ec-secp256k1', format: 'raw', keyData: hex(vector.secret) });
    const x = Buffer.from((await session.publicKey(key.keyId, 'jwk')).x!, 'base64url');
    t.equal(x.toString('hex'), vector.publicKey.toLowerCase(), `vector ${i}: x-only public key`);
    t.same(Buffer.from(schnorr.sign(hex(vector.message), hex(vector.secret), hex(vector.auxRand))), hex(vector.signature), `vector ${i}: @noble reproduces it`);
    t.equal(await session.verify(key.keyId, hex(vector.message), hex(vector.signature), { algorithm: 'bip340' }), true, `vector ${i}: verifies on the server`);
    t.equal(await session.verify(key.keyId, flipped(hex(vector.message)), hex(vector.signature), { algorithm: 'bip340' }), false, `vector ${i}: not for another message`);
    const ours = await session.sign(key.keyId, hex(vector.message), { algorithm: 'bip340' });
    t.ok(schnorr.verify(ours, hex(vector.message), x), `vector ${i}: the server's own signature (fresh aux) verifies with @noble`);
  }
});

t.test('BIP-340: both ways over random messages and keys', async (t) => {
  const { session } = await aliceSession(t);
  const generated = await session.generateKey({ type: 'ec-secp256k1' });
  const x = Buffer.from((await session.publicKey(generated.keyId, 'jwk')).x!, 'base64url');
  const secret = schnorr.utils.randomSecretKey();
  const imported = await session.importKey({ type: 'ec-secp256k1', format: 'raw', keyData: secret });
  await Promise.all(
    messages.map(async (message) => {
      const signature = await session.sign(generated.keyId, message, { algorithm: 'bip340' });
      t.equal(signature.length, 64, 'a 64-byte signature');
      t.ok(schnorr.verify(signature, message, x), `@noble verifies the server's (${message.length} bytes)`);
      t.equal(await session.verify(generated.keyId, message, signature, { algorithm: 'bip340' }), true, 'the server verifies its own');
      const theirs = schnorr.sign(message, secret);
      t.equal(await session.verify(imported.keyId, message, theirs, { algorithm: 'bip340' }), true, '@noble signature verifies on the server');
      t.equal(await session.verify(imported.keyId, message, flipped(theirs, 40)), false, 'the default algorithm (ECDSA) does not accept it');
    }),
  );
  const twice = await Promise.all([1, 2].map(() => session.sign(generated.keyId, messages[1]!, { algorithm: 'bip340' })));
  t.not(Buffer.from(twice[0]!).toString('hex'), Buffer.from(twice[1]!).toString('hex'), 'fresh auxiliary randomness per signature');
  await expectCode(t, session.sign(generated.keyId, randomBytes(32), { algorithm: 'bip340', prehashed: true }), 'INVALID_ARGUMENT', 'BIP-340 takes no prehashed input');
  const p256 = await session.generateKey({ type: 'ec-p256' });
  await expectCode(t, session.sign(p256.keyId, randomBytes(32), { algorithm: 'bip340' }), 'WRONG_KEY_TYPE', 'BIP-340 with a P-256 key');
  t.equal(await session.verify(generated.keyId, messages[1]!, randomBytes(63), { algorithm: 'bip340' }), false, 'a 63-byte signature is simply invalid');
});
