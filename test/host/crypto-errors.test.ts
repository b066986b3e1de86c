/**
 * Usage enforcement on every operation, key type / mechanism fit, and
 * malformed fields of the new operations: each refused with a clear code,
 * and none of them changes anything stored.
 */
import t from 'tap';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import type { KeyTypeName, KeyUsageName } from '../../client/index.js';
import { expectCode } from './helpers/expect.js';
import { ALICE, identity } from './helpers/fixture.js';
import { auditRows, call, rawLogin, snapshot } from './helpers/raw.js';
import { aliceSession } from './helpers/crypto-session.js';

t.test('usages are enforced on every operation', async (t) => {
  const { fixture, session } = await aliceSession(t);
  const make = (type: KeyTypeName, usages: KeyUsageName[]) => session.generateKey({ type, usages, extractable: true });
  const verifyOnly = await make('ec-p256', ['verify']);
  const signOnly = await make('ec-p256', ['sign']);
  const rsaEncrypt = await make('rsa-2048', ['encrypt']);
  const rsaSign = await make('rsa-2048', ['sign', 'verify']);
  const aesDecrypt = await make('aes-256', ['decrypt']);
  const secret = await make('secret', ['derive']);
  const hmacKey = await make('hmac', ['mac']);
  const x = await make('x25519', ['derive']);
  const signature = await session.sign(signOnly.keyId, Buffer.from('m'));
  const peer = p256.getPublicKey(p256.utils.randomSecretKey(), false);
  const empty = new Uint8Array(0);
  const uses = async () => (await session.listKeys()).map((k) => [k.keyId, k.useCount, k.lastUsedAt?.getTime() ?? 0]);
  const usesBefore = await uses();
  const before = (await snapshot(fixture.dbPath));

  const refused: [string, () => Promise<unknown>][] = [
    ['sign with a verify-only key', () => session.sign(verifyOnly.keyId, Buffer.from('m'))],
    ['verify with a sign-only key', () => session.verify(signOnly.keyId, Buffer.from('m'), signature)],
    ['decrypt with an encrypt-only RSA key', () => session.decrypt(rsaEncrypt.keyId, { nonce: empty, ciphertext: randomBytes(256), tag: empty })],
    ['sign with an encrypt-only RSA key', () => session.sign(rsaEncrypt.keyId, Buffer.from('m'))],
    ['encrypt with a sign/verify RSA key', () => session.encrypt(rsaSign.keyId, Buffer.from('m'))],
    ['encrypt with a decrypt-only AES key', () => session.encrypt(aesDecrypt.keyId, Buffer.from('m'))],
    ['encrypt with a secret (derive) key', () => session.encrypt(secret.keyId, Buffer.from('m'))],
    ['mac with a secret (derive) key', () => session.mac(secret.keyId, Buffer.from('m'))],
    ['streaming mac with a secret key', () => session.macInit(secret.keyId)],
    ['sign with an HMAC key', () => session.sign(hmacKey.keyId, Buffer.from('m'))],
    ['derive from an HMAC key', () => session.deriveKey(hmacKey.keyId, { type: 'secret' })],
    ['sign with an X25519 key', () => session.sign(x.keyId, Buffer.from('m'))],
    ['agree with a sign-only P-256 key', () => session.agreeKey(signOnly.keyId, peer)],
    ['unwrap with a sign/verify RSA key', () => session.importWrappedKey({ type: 'aes-256', wrappingKeyId: rsaSign.keyId, wrappedKey: randomBytes(300) })],
    ['wrap with an encrypt-only RSA key', () => session.exportWrappedKey(hmacKey.keyId, { wrappingKeyId: rsaEncrypt.keyId })],
  ];
  for (const [label, attempt] of refused) await expectCode(t, attempt(), 'USAGE_NOT_ALLOWED', label);

  const misfit: [string, () => Promise<unknown>][] = [
    ['Ed25519 with a P-256 key', () => session.sign(signOnly.keyId, Buffer.from('m'), { algorithm: 'ed25519' })],
    ['RSA-PSS with a P-256 key', () => session.sign(signOnly.keyId, Buffer.from('m'), { algorithm: 'rsa-pss-sha256' })],
    ['BIP-340 with an RSA key', () => session.sign(rsaSign.keyId, Buffer.from('m'), { algorithm: 'bip340' })],
    ['ChaCha20-Poly1305 with an AES key', () => session.decrypt(aesDecrypt.keyId, { nonce: randomBytes(12), ciphertext: empty, tag: randomBytes(16) }, { algorithm: 'chacha20-poly1305' })],
    ['AES-GCM with an RSA key', () => session.encrypt(rsaEncrypt.keyId, Buffer.from('m'), { algorithm: 'aes-256-gcm' })],
    ['HKDF from an X25519 key', () => session.deriveKey(x.keyId, { type: 'secret' })],
    ['key agreement with a secret key', () => session.agreeKey(secret.keyId, peer)],
  ];
  for (const [label, attempt] of misfit) await expectCode(t, attempt(), 'WRONG_KEY_TYPE', label);
  t.equal((await snapshot(fixture.dbPath)), before, 'nothing stored changed');
  t.same(await uses(), usesBefore, 'no refused operation counted as a use');
  t.equal((await auditRows(fixture.dbPath)).filter((row) => row.result === 'USAGE_NOT_ALLOWED').length, refused.length, 'each refusal is audited');
});

t.test('usages outside a key type’s set are refused at creation', async (t) => {
  const { fixture, session } = await aliceSession(t);
  const before = (await snapshot(fixture.dbPath));
  const cases: [KeyTypeName, KeyUsageName][] = [
    ['x25519', 'sign'],
    ['aes-256', 'sign'],
    ['aes-256', 'wrap'],
    ['chacha20', 'mac'],
    ['secret', 'encrypt'],
    ['ed25519', 'derive'],
    ['ec-secp256k1', 'derive'],
    ['rsa-2048', 'derive'],
    ['hmac', 'encrypt'],
    ['ec-p521', 'encrypt'],
  ];
  for (const [type, usage] of cases) await expectCode(t, session.generateKey({ type, usages: [usage] }), 'USAGE_NOT_ALLOWED', `${type} with ${usage}`);
  t.equal((await snapshot(fixture.dbPath)), before, 'no key was created');
  const defaults: [KeyTypeName, string[]][] = [
    ['ec-p384', ['sign', 'verify']],
    ['x25519', ['derive']],
    ['aes-256', ['encrypt', 'decrypt']],
    ['chacha20', ['encrypt', 'decrypt']],
    ['secret', ['derive']],
  ];
  for (const [type, usages] of defaults) t.same((await session.generateKey({ type })).usages, usages, `${type} defaults`);
});

t.test('imports are checked: pairwise consistency, sizes, formats', async (t) => {
  const { fixture, session } = await aliceSession(t);
  const before = (await snapshot(fixture.dbPath));
  const a = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'der', type: 'pkcs8' });
  const b = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
  const mismatched = Buffer.concat([a.subarray(0, a.length - 65), b.subarray(b.length - 65)]); // A's scalar, B's public point
  await expectCode(t, session.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: mismatched }), 'INVALID_ARGUMENT', 'a PKCS#8 whose public key is not its own');
  await expectCode(t, session.importKey({ type: 'x25519', format: 'raw', keyData: randomBytes(31) }), 'INVALID_ARGUMENT', 'a 31-byte X25519 key');
  await expectCode(t, session.importKey({ type: 'rsa-2048', format: 'raw', keyData: randomBytes(256) }), 'INVALID_ARGUMENT', 'RSA keys are not raw');
  await expectCode(t, session.importKey({ type: 'secret', format: 'raw', keyData: randomBytes(15) }), 'INVALID_ARGUMENT', 'a 15-byte secret');
  await expectCode(t, session.importKey({ type: 'secret', format: 'pkcs8-der', keyData: a }), 'INVALID_ARGUMENT', 'a secret as PKCS#8');
  const x = generateKeyPairSync('x25519').privateKey.export({ format: 'der', type: 'pkcs8' });
  await expectCode(t, session.importKey({ type: 'ed25519', format: 'pkcs8-der', keyData: x }), 'WRONG_KEY_TYPE', 'an X25519 key as ed25519');
  t.equal((await snapshot(fixture.dbPath)), before, 'nothing was stored');
  t.equal((await session.importKey({ type: 'x25519', format: 'pkcs8-der', keyData: x })).type, 'x25519', 'the same key as x25519 is fine');
});

t.test('malformed fields of the new operations (raw protocol)', async (t) => {
  const { fixture } = await aliceSession(t);
  const transport = fixture.hub.connect(identity());
  const session = await rawLogin(transport, ALICE.name, ALICE.password);
  const codeOf = async (request: Parameters<typeof call>[1], withSession = true) => (await call(transport, withSession ? { session, ...request } : request)).error ?? 'OK';
  const before = (await snapshot(fixture.dbPath));
  const spec = { type: 13 };
  const cases: [string, Parameters<typeof call>[1], string][] = [
    ['an unknown encryption algorithm', { encrypt: { keyId: 'k', algorithm: 99 as never } }, 'INVALID_ARGUMENT'],
    ['a 65-byte nonce', { decrypt: { keyId: 'k', nonce: new Uint8Array(65) } }, 'INVALID_ARGUMENT'],
    ['a 65-byte tag', { decrypt: { keyId: 'k', tag: new Uint8Array(65) } }, 'INVALID_ARGUMENT'],
    ['agreeKey without a result spec', { agreeKey: { privateKeyId: 'k', peerPublicKey: Uint8Array.of(4) } }, 'INVALID_ARGUMENT'],
    ['agreeKey without a peer key', { agreeKey: { privateKeyId: 'k', result: spec } }, 'INVALID_ARGUMENT'],
    ['a peer key over 1 KiB', { agreeKey: { privateKeyId: 'k', result: spec, peerPublicKey: new Uint8Array(1025) } }, 'INVALID_ARGUMENT'],
    ['an unknown KDF', { deriveKey: { baseKeyId: 'k', result: spec, kdf: { algorithm: 7 as never } } }, 'INVALID_ARGUMENT'],
    ['info over 1 KiB', { deriveKey: { baseKeyId: 'k', result: spec, kdf: { info: new Uint8Array(1025) } } }, 'INVALID_ARGUMENT'],
    ['length_bytes over 1024', { deriveKey: { baseKeyId: 'k', result: spec, lengthBytes: 1025 } }, 'INVALID_ARGUMENT'],
    ['random length 0', { random: { length: 0 } }, 'INVALID_ARGUMENT'],
    ['random length 4097', { random: { length: 4097 } }, 'INVALID_ARGUMENT'],
    ['an unknown public key format', { wrappingKey: { format: 9 as never } }, 'INVALID_ARGUMENT'],
    ['import without wrapped_key', { importWrappedKey: { spec } }, 'INVALID_ARGUMENT'],
    ['a bad wrapping key id', { importWrappedKey: { spec, wrappingKeyId: '-x', wrappedKey: Uint8Array.of(1) } }, 'INVALID_ARGUMENT'],
    ['export to both a stored and a given key', { exportWrappedKey: { keyId: 'k', wrappingKeyId: 'w', wrappingPublicKey: Uint8Array.of(1) } }, 'INVALID_ARGUMENT'],
    ['export to neither', { exportWrappedKey: { keyId: 'k' } }, 'INVALID_ARGUMENT'],
    ['an unknown digest', { digestInit: { algorithm: 42 as never } }, 'INVALID_ARGUMENT'],
    ['an unknown MAC', { macInit: { keyId: 'k', algorithm: 42 as never } }, 'INVALID_ARGUMENT'],
    ['stream id 0', { streamFinal: { streamId: 0 } }, 'INVALID_ARGUMENT'],
    ['a 65-byte expected MAC', { streamFinal: { streamId: 1, expectedMac: new Uint8Array(65) } }, 'INVALID_ARGUMENT'],
    ['a stream that was never opened', { streamAbort: { streamId: 77 } }, 'STREAM_NOT_FOUND'],
    ['encrypt with a missing key', { encrypt: { keyId: 'missing' } }, 'KEY_NOT_FOUND'],
  ];
  for (const [label, request, code] of cases) t.equal(await codeOf(request), code, label);
  const validBodies: Parameters<typeof call>[1][] = [
    { encrypt: { keyId: 'k' } },
    { decrypt: { keyId: 'k' } },
    { agreeKey: { privateKeyId: 'k', peerPublicKey: Uint8Array.of(4), result: spec } },
    { deriveKey: { baseKeyId: 'k', result: spec } },
    { random: { length: 1 } },
    { wrappingKey: {} },
    { importWrappedKey: { spec, wrappedKey: Uint8Array.of(1) } },
    { exportWrappedKey: { keyId: 'k', wrappingKeyId: 'w' } },
    { digestInit: {} },
    { macInit: { keyId: 'k' } },
    { streamUpdate: { streamId: 1 } },
    { streamFinal: { streamId: 1 } },
    { streamAbort: { streamId: 1 } },
  ];
  for (const body of validBodies) t.equal(await codeOf(body, false), 'NOT_AUTHENTICATED', `${Object.keys(body)[0]} needs a session`);
  t.equal((await snapshot(fixture.dbPath)), before, 'nothing stored changed');
});

t.test('audit rows name the new operations and their keys', async (t) => {
  const { fixture, session } = await aliceSession(t);
  const aes = await session.generateKey({ type: 'aes-256', keyId: 'audited-aes' });
  await session.decrypt(aes.keyId, await session.encrypt(aes.keyId, Buffer.from('x')));
  await session.random(8);
  const stream = await session.macInit((await session.generateKey({ type: 'hmac', keyId: 'audited-mac' })).keyId);
  await stream.update(Buffer.from('y'));
  await stream.final();
  const rows = (await auditRows(fixture.dbPath)).map((row) => `${row.op}:${row.key_id}:${row.result}`);
  for (const expected of ['encrypt:audited-aes:OK', 'decrypt:audited-aes:OK', 'random::OK', 'macInit:audited-mac:OK', 'streamUpdate:audited-mac:OK', 'streamFinal:audited-mac:OK']) {
    t.ok(rows.includes(expected), expected);
  }
});
