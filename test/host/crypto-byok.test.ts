/**
 * Wrapped key transport (BYOK): RSA-OAEP(SHA-256) + AES-KWP (RFC 5649), the
 * Vault / AWS / GCP format. Blobs are built and opened outside the server
 * with the BigInt reference RSA and @noble/ciphers' aeskwp; RFC 5649
 * vectors for the KWP layer; every failure changes nothing.
 */
import t from 'tap';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { aeskwp, gcm } from '@noble/ciphers/aes.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { kwpUnwrap, kwpWrap } from '../../server/crypto/byok.js';
import { expectCode } from './helpers/expect.js';
import { snapshot } from './helpers/raw.js';
import { aliceSession, flipped, hex, toHex } from './helpers/crypto-session.js';
import { oaepDecrypt, oaepEncrypt, rsaPrivateOf, rsaPublicOf, type RsaPublic } from './helpers/crypto-rsa-reference.js';

/** What a Vault / KMS client does: a fresh AES key, KWP the material under it, OAEP the AES key. */
function wrapFor(publicKey: RsaPublic, material: Uint8Array, kek: Uint8Array = randomBytes(32)): Buffer {
  return Buffer.concat([oaepEncrypt(publicKey, kek), aeskwp(kek).encrypt(material)]);
}

t.test('RFC 5649 vectors: the server KWP and @noble agree', async (t) => {
  const kek = hex('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8');
  const vectors = [
    ['c37b7e6492584340bed12207808941155068f738', '138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a'],
    ['466f7250617369', 'afbeb0f07dfbf5419200f2ccb50bb24f'],
  ] as const;
  for (const [key, wrapped] of vectors) {
    t.equal(toHex(kwpWrap(kek, hex(key))), wrapped, `wrap ${key.length / 2} bytes`);
    t.equal(toHex(kwpUnwrap(kek, hex(wrapped))!), key, 'unwrap');
    t.equal(toHex(aeskwp(kek).encrypt(hex(key))), wrapped, '@noble agrees');
    t.equal(kwpUnwrap(kek, flipped(hex(wrapped), 9)), null, 'a flipped bit fails the integrity check');
  }
  for (const size of [1, 8, 9, 32, 1217]) {
    const data = randomBytes(size);
    const key = randomBytes(32);
    t.same(Buffer.from(aeskwp(key).decrypt(kwpWrap(key, data))), data, `@noble unwraps the server's KWP of ${size} bytes`);
    t.same(kwpUnwrap(key, aeskwp(key).encrypt(data)), data, `the server unwraps @noble's KWP of ${size} bytes`);
  }
});

const { fixture, session } = await aliceSession(t);
const wrapping = await session.wrappingKey();
const wrappingPublic = rsaPublicOf(createPublicKey({ key: Buffer.from(wrapping.publicKey), format: 'der', type: 'spki' }));

t.test('the wrapping key: RSA-4096, unwrap only, created once', async (t) => {
  t.equal(wrapping.key.keyId, 'vhsm-wrapping-key');
  t.equal(wrapping.key.type, 'rsa-4096');
  t.same(wrapping.key.usages, ['unwrap']);
  t.equal(wrapping.key.extractable, false);
  t.equal(wrappingPublic.bits, 4096);
  t.match(wrapping.publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/);
  const again = await session.wrappingKey();
  t.same(Buffer.from(again.publicKey), Buffer.from(wrapping.publicKey), 'the same key the second time');
  t.ok((await session.listKeys()).some((key) => key.keyId === 'vhsm-wrapping-key'), 'listed with the user’s keys');
  await expectCode(t, session.decrypt('vhsm-wrapping-key', { nonce: new Uint8Array(0), ciphertext: randomBytes(512), tag: new Uint8Array(0) }), 'USAGE_NOT_ALLOWED', 'not a decryption key');
});

t.test('import: wrapped keys of each kind arrive intact', async (t) => {
  // RFC 5649's 20-byte key under its 192-bit KEK, as an HMAC key.
  const vectorKey = hex('c37b7e6492584340bed12207808941155068f738');
  const rfcBlob = Buffer.concat([oaepEncrypt(wrappingPublic, hex('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8')), hex('138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a')]);
  const macKey = await session.importWrappedKey({ type: 'hmac', wrappedKey: rfcBlob });
  t.same(Buffer.from(await session.mac(macKey.keyId, Buffer.from('abc'))), Buffer.from(hmac(sha256, vectorKey, Buffer.from('abc'))), 'hmac (RFC 5649 blob, AES-192 ephemeral key)');

  const aesSecret = randomBytes(32);
  const aes = await session.importWrappedKey({ type: 'aes-256', wrappedKey: wrapFor(wrappingPublic, aesSecret, randomBytes(16)) });
  const sealed = await session.encrypt(aes.keyId, Buffer.from('byok'));
  t.equal(Buffer.from(gcm(aesSecret, sealed.nonce).decrypt(Buffer.concat([sealed.ciphertext, sealed.tag]))).toString(), 'byok', 'aes-256 (AES-128 ephemeral key)');

  const seed = ed25519.utils.randomSecretKey();
  const edRaw = await session.importWrappedKey({ type: 'ed25519', format: 'raw', wrappedKey: wrapFor(wrappingPublic, seed) });
  t.same(Buffer.from(await session.sign(edRaw.keyId, Buffer.from('m'))), Buffer.from(ed25519.sign(Buffer.from('m'), seed)), 'ed25519 (raw seed)');

  for (const [type, make] of [
    ['ec-p256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['rsa-2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['ed25519', () => generateKeyPairSync('ed25519')],
  ] as const) {
    const { privateKey, publicKey } = make();
    const imported = await session.importWrappedKey({ type, wrappedKey: wrapFor(wrappingPublic, privateKey.export({ format: 'der', type: 'pkcs8' })) });
    t.same(Buffer.from(await session.publicKey(imported.keyId)), publicKey.export({ format: 'der', type: 'spki' }), `${type} (PKCS#8): same public key`);
    const digest = type === 'ed25519' ? null : 'sha256';
    const signature = await session.sign(imported.keyId, Buffer.from('hello'), { algorithm: type === 'rsa-2048' ? 'rsa-pkcs1-sha256' : undefined });
    t.ok(nodeVerify(digest, Buffer.from('hello'), publicKey, signature), `${type}: its signatures verify with the original public key`);
  }
  t.equal((await session.keyInfo('vhsm-wrapping-key')).useCount, 6, 'the wrapping key counted six unwraps');
});

t.test('import: failures are DECRYPT_FAILED or a clear code, and store nothing', async (t) => {
  const good = wrapFor(wrappingPublic, randomBytes(32));
  const before = (await snapshot(fixture.dbPath));
  const k = wrappingPublic.k;
  const attempts: [string, () => Promise<unknown>, string][] = [
    ['a flipped bit in the RSA part', () => session.importWrappedKey({ type: 'aes-256', wrappedKey: flipped(good, 100) }), 'DECRYPT_FAILED'],
    ['a flipped bit in the KWP part', () => session.importWrappedKey({ type: 'aes-256', wrappedKey: flipped(good, k + 5) }), 'DECRYPT_FAILED'],
    ['the KWP part cut short', () => session.importWrappedKey({ type: 'aes-256', wrappedKey: good.subarray(0, good.length - 8) }), 'DECRYPT_FAILED'],
    ['an ephemeral key of 20 bytes', () => session.importWrappedKey({ type: 'aes-256', wrappedKey: Buffer.concat([oaepEncrypt(wrappingPublic, randomBytes(20)), good.subarray(k)]) }), 'DECRYPT_FAILED'],
    ['only the RSA part', () => session.importWrappedKey({ type: 'aes-256', wrappedKey: good.subarray(0, k) }), 'INVALID_ARGUMENT'],
    ['a 16-byte secret as aes-256', () => session.importWrappedKey({ type: 'aes-256', wrappedKey: wrapFor(wrappingPublic, randomBytes(16)) }), 'INVALID_ARGUMENT'],
    ['random bytes as PKCS#8', () => session.importWrappedKey({ type: 'ec-p256', wrappedKey: wrapFor(wrappingPublic, randomBytes(100)) }), 'INVALID_ARGUMENT'],
    ['usages the type does not allow', () => session.importWrappedKey({ type: 'aes-256', usages: ['sign'], wrappedKey: good }), 'USAGE_NOT_ALLOWED'],
    ['a wrapping key that does not exist', () => session.importWrappedKey({ type: 'aes-256', wrappingKeyId: 'nope', wrappedKey: good }), 'KEY_NOT_FOUND'],
  ];
  for (const [label, attempt, code] of attempts) await expectCode(t, attempt(), code, label);
  t.equal((await snapshot(fixture.dbPath)), before, 'the refused imports changed nothing');
  const plainRsa = await session.generateKey({ type: 'rsa-2048', usages: ['decrypt'] });
  const aes = await session.generateKey({ type: 'aes-256', usages: ['encrypt'] });
  const withKeys = (await snapshot(fixture.dbPath));
  t.not(withKeys, before, '(the snapshot does see new keys)');
  await expectCode(t, session.importWrappedKey({ type: 'aes-256', wrappingKeyId: plainRsa.keyId, wrappedKey: good }), 'USAGE_NOT_ALLOWED', 'an RSA key without unwrap');
  await expectCode(t, session.importWrappedKey({ type: 'aes-256', wrappingKeyId: aes.keyId, wrappedKey: good }), 'USAGE_NOT_ALLOWED', 'an AES key as the wrapping key');
  await expectCode(t, session.exportWrappedKey(aes.keyId, { publicKey: wrapping.publicKey }), 'NOT_EXTRACTABLE', 'a non-extractable key is not exported, wrapped or not');
  t.equal((await snapshot(fixture.dbPath)), withKeys, 'nor did these');
});

t.test('export: wrapped under a caller key (DER or PEM) or a stored key, opened outside', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const reference = rsaPrivateOf(privateKey);
  const unwrapOutside = (blob: Uint8Array): Buffer => {
    const kek = oaepDecrypt(reference, blob.subarray(0, reference.k));
    t.equal(kek.length, 32, 'the ephemeral key is AES-256');
    return Buffer.from(aeskwp(kek).decrypt(blob.subarray(reference.k)));
  };
  const secret = await session.generateKey({ type: 'aes-256', extractable: true });
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const plain = Buffer.from(await session.exportKey(secret.keyId, 'raw'));
  t.same(unwrapOutside(await session.exportWrappedKey(secret.keyId, { publicKey: der })), plain, 'aes-256 under an SPKI DER key: raw bytes');
  t.same(unwrapOutside(await session.exportWrappedKey(secret.keyId, { publicKey: pem })), plain, 'under a PEM key');
  const pair = await session.generateKey({ type: 'ec-p384', extractable: true });
  const pkcs8 = unwrapOutside(await session.exportWrappedKey(pair.keyId, { publicKey: der }));
  const recovered = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  t.ok(nodeVerify('sha384', Buffer.from('x'), Buffer.from(await session.publicKey(pair.keyId, 'spki-pem')).toString(), nodeSign('sha384', Buffer.from('x'), recovered)), 'ec-p384 as PKCS#8: the recovered key matches');
  t.same(unwrapOutside(await session.exportWrappedKey(pair.keyId, { publicKey: der }, { format: 'raw' })).length, 48, 'or as the raw scalar');

  // Between two stored keys: export under one key's public half, import with its private half.
  const transport = await session.generateKey({ type: 'rsa-3072', usages: ['wrap', 'unwrap'] });
  const blob = await session.exportWrappedKey(secret.keyId, { wrappingKeyId: transport.keyId });
  const copy = await session.importWrappedKey({ type: 'aes-256', wrappingKeyId: transport.keyId, wrappedKey: blob, extractable: true });
  t.same(Buffer.from(await session.exportKey(copy.keyId, 'raw')), plain, 'a round trip through a stored wrap/unwrap key');

  await expectCode(t, session.exportWrappedKey(secret.keyId, { wrappingKeyId: 'vhsm-wrapping-key' }), 'USAGE_NOT_ALLOWED', 'the unwrap-only key does not wrap');
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' });
  await expectCode(t, session.exportWrappedKey(secret.keyId, { publicKey: small }), 'INVALID_ARGUMENT', 'a 1024-bit RSA key');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
  await expectCode(t, session.exportWrappedKey(secret.keyId, { publicKey: ec }), 'INVALID_ARGUMENT', 'an EC public key');
  await expectCode(t, session.exportWrappedKey(secret.keyId, { publicKey: randomBytes(100) }), 'INVALID_ARGUMENT', 'garbage');
  await expectCode(t, session.exportWrappedKey(secret.keyId, { publicKey: 'not a pem' }), 'INVALID_ARGUMENT', 'a bad PEM (caught client-side)');
});
