/**
 * AES-256-GCM and ChaCha20-Poly1305 with associated data: server-chosen
 * random nonces, cross-checked both ways with @noble/ciphers over random
 * inputs, plus the published vectors (GCM test case 14 for AES-256,
 * RFC 8439 §2.8.2); tampering with any part is DECRYPT_FAILED.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import type { EncryptionAlgorithmName, KeyTypeName } from '../../client/index.js';
import { expectCode } from './helpers/expect.js';
import { aliceSession, flipped, hex, MESSAGE_SIZES } from './helpers/crypto-session.js';

type NobleAead = (key: Uint8Array, nonce: Uint8Array, aad?: Uint8Array) => { encrypt(p: Uint8Array): Uint8Array; decrypt(c: Uint8Array): Uint8Array };

const AEADS: readonly { type: KeyTypeName; algorithm: EncryptionAlgorithmName; noble: NobleAead }[] = [
  { type: 'aes-256', algorithm: 'aes-256-gcm', noble: gcm },
  { type: 'chacha20', algorithm: 'chacha20-poly1305', noble: chacha20poly1305 },
];

const sizes = [...MESSAGE_SIZES, 15, 16, 17];

for (const { type, algorithm, noble } of AEADS) {
  t.test(`${algorithm}: server and @noble both ways`, async (t) => {
    const { session } = await aliceSession(t);
    const secret = randomBytes(32);
    const key = await session.importKey({ type, format: 'raw', keyData: secret });
    t.same(key.usages, ['encrypt', 'decrypt'], 'default usages');
    await Promise.all(
      sizes.flatMap((size) =>
        [0, 13].map(async (aadLength) => {
          const plaintext = randomBytes(size);
          const aad = randomBytes(aadLength);
          const sealed = await session.encrypt(key.keyId, plaintext, { aad });
          t.equal(sealed.nonce.length, 12, 'a 96-bit nonce');
          t.equal(sealed.tag.length, 16, 'a 128-bit tag');
          t.equal(sealed.ciphertext.length, size, 'ciphertext as long as the plaintext');
          const opened = noble(secret, sealed.nonce, aad).decrypt(Buffer.concat([sealed.ciphertext, sealed.tag]));
          t.same(Buffer.from(opened), plaintext, `@noble opens the server's ${size}+${aadLength} bytes`);
          t.same(Buffer.from(await session.decrypt(key.keyId, sealed, { aad })), plaintext, 'the server opens its own');

          const nonce = randomBytes(12);
          const theirs = noble(secret, nonce, aad).encrypt(plaintext);
          const fromNoble = { nonce, ciphertext: theirs.subarray(0, size), tag: theirs.subarray(size) };
          t.same(Buffer.from(await session.decrypt(key.keyId, fromNoble, { aad })), plaintext, 'the server opens a @noble ciphertext');
        }),
      ),
    );
  });

  t.test(`${algorithm}: nonces are fresh; tampering fails; sizes are checked`, async (t) => {
    const { session } = await aliceSession(t);
    const key = await session.generateKey({ type, extractable: true });
    const secret = await session.exportKey(key.keyId, 'raw');
    const plaintext = randomBytes(100);
    const aad = Buffer.from('header v1');
    const sealed = await Promise.all(Array.from({ length: 64 }, () => session.encrypt(key.keyId, plaintext, { aad })));
    t.equal(new Set(sealed.map((s) => Buffer.from(s.nonce).toString('hex'))).size, 64, '64 encryptions, 64 distinct nonces');
    const one = sealed[0]!;
    t.same(Buffer.from(noble(secret, one.nonce, aad).decrypt(Buffer.concat([one.ciphertext, one.tag]))), plaintext, 'a generated key, exported, opens with @noble');

    const tampered: [string, () => Promise<unknown>][] = [
      ['a flipped ciphertext bit', () => session.decrypt(key.keyId, { ...one, ciphertext: flipped(one.ciphertext, 50, 3) }, { aad })],
      ['a flipped tag bit', () => session.decrypt(key.keyId, { ...one, tag: flipped(one.tag, 15, 7) }, { aad })],
      ['a flipped nonce bit', () => session.decrypt(key.keyId, { ...one, nonce: flipped(one.nonce, 0) }, { aad })],
      ['other aad', () => session.decrypt(key.keyId, one, { aad: Buffer.from('header v2') })],
      ['missing aad', () => session.decrypt(key.keyId, one)],
      ['a truncated ciphertext', () => session.decrypt(key.keyId, { ...one, ciphertext: one.ciphertext.subarray(1) }, { aad })],
      ["another key's ciphertext", () => session.decrypt(key.keyId, sealed[1]!, { aad: Buffer.from('x') })],
    ];
    for (const [label, attempt] of tampered) await expectCode(t, attempt(), 'DECRYPT_FAILED', label);
    await expectCode(t, session.decrypt(key.keyId, { ...one, nonce: one.nonce.subarray(1) }, { aad }), 'INVALID_ARGUMENT', 'an 11-byte nonce');
    await expectCode(t, session.decrypt(key.keyId, { ...one, nonce: Buffer.concat([one.nonce, Buffer.of(0)]) }, { aad }), 'INVALID_ARGUMENT', 'a 13-byte nonce');
    await expectCode(t, session.decrypt(key.keyId, { ...one, tag: one.tag.subarray(0, 12) }, { aad }), 'INVALID_ARGUMENT', 'a truncated (96-bit) tag');
    await expectCode(t, session.decrypt(key.keyId, { ...one, tag: new Uint8Array(0) }, { aad }), 'INVALID_ARGUMENT', 'no tag');
    const other = AEADS.find((row) => row.algorithm !== algorithm)!;
    await expectCode(t, session.encrypt(key.keyId, plaintext, { algorithm: other.algorithm }), 'WRONG_KEY_TYPE', `${other.algorithm} with a ${type} key`);
    await expectCode(t, session.encrypt(key.keyId, plaintext, { algorithm: 'rsa-oaep-sha256' }), 'WRONG_KEY_TYPE', 'RSA-OAEP with a secret key');
    await expectCode(t, session.generateKey({ type, lengthBytes: 16 }), 'INVALID_ARGUMENT', `${type} keys are 32 bytes`);
    await expectCode(t, session.importKey({ type, format: 'raw', keyData: randomBytes(31) }), 'INVALID_ARGUMENT', 'a 31-byte key');
    t.same(Buffer.from(await session.decrypt(key.keyId, one, { aad })), plaintext, 'the original still opens after all that');
  });
}

t.test('published vectors decrypt on the server', async (t) => {
  const { session } = await aliceSession(t);
  // McGrew & Viega, GCM test case 14 (AES-256, zero key, zero IV, one zero block).
  const zeroKey = await session.importKey({ type: 'aes-256', format: 'raw', keyData: new Uint8Array(32) });
  const gcmVector = { nonce: new Uint8Array(12), ciphertext: hex('cea7403d4d606b6e074ec5d3baf39d18'), tag: hex('d0d1c8a799996bf0265b98b5d48ab919') };
  t.same(Buffer.from(await session.decrypt(zeroKey.keyId, gcmVector)), Buffer.alloc(16), 'GCM test case 14');
  // RFC 8439 §2.8.2.
  const chachaKey = await session.importKey({ type: 'chacha20', format: 'raw', keyData: hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f') });
  const sunscreen = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
  const rfc8439 = {
    nonce: hex('070000004041424344454647'),
    ciphertext: hex(`d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
      92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116`),
    tag: hex('1ae10b594f09e26a7e902ecbd0600691'),
  };
  const opened = await session.decrypt(chachaKey.keyId, rfc8439, { aad: hex('50515253c0c1c2c3c4c5c6c7') });
  t.equal(Buffer.from(opened).toString('latin1'), sunscreen, 'RFC 8439 §2.8.2');
});
