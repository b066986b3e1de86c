/**
 * Every mechanism once, end to end through vhsm_transport.ko (the fixture's
 * server in the VHSM netns, the client in container 101's netns), with each
 * result checked outside the server: by the `openssl` CLI wherever OpenSSL
 * 3.0 has the algorithm, otherwise in this process (node:crypto for the
 * AEADs and AES-KWP, @noble/curves for BIP-340).
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, randomBytes, type CipherGCMTypes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import type { KeyTypeName, SignatureAlgorithmName } from '../../client/index.js';
import { ALICE, startFixture } from '../host/helpers/fixture.js';
import { expectCode } from '../host/helpers/expect.js';
import { flipped, toHex } from '../host/helpers/crypto-session.js';
import { snapshot } from '../host/helpers/raw.js';
import { countersText, setupKernelTransports } from './lib/kernel-transports.js';
import { dmesgLines } from './lib/module.js';

const BAD_KERNEL_LOG = /WARNING:|BUG:|Oops|KASAN|UBSAN|refcount_t|general protection|Call Trace/;

// ---- scratch files (tmpfs in the VM) and the openssl CLI ----
const dir = mkdtempSync('/tmp/vhsm-crypto-e2e-');
function file(name: string, data?: Uint8Array | string): string {
  const path = join(dir, name);
  if (data !== undefined) writeFileSync(path, data);
  return path;
}
const read = (name: string): Buffer => readFileSync(join(dir, name));

/** Runs openssl; throws (with its stderr) on a non-zero exit. */
function openssl(args: readonly string[], input?: Uint8Array): Buffer {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 20 });
}

/** True when an openssl verify command exits 0 and says so; false when it rejects. */
function opensslVerifies(args: readonly string[]): boolean {
  try {
    return /Verified OK|Signature Verified Successfully/.test(openssl(args).toString());
  } catch {
    return false;
  }
}

const OAEP = ['-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256', '-pkeyopt', 'rsa_mgf1_md:sha256'];

/** The DER SEQUENCE { INTEGER r, INTEGER s } of a raw r || s signature. */
function rawToDer(raw: Uint8Array): Buffer {
  const int = (bytes: Uint8Array): Buffer => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    const body = bytes[i]! & 0x80 ? Buffer.concat([Buffer.of(0), bytes.subarray(i)]) : Buffer.from(bytes.subarray(i));
    return Buffer.concat([Buffer.of(0x02, body.length), body]);
  };
  const half = raw.length / 2;
  const seq = Buffer.concat([int(raw.subarray(0, half)), int(raw.subarray(half))]);
  return Buffer.concat([Buffer.of(0x30), seq.length < 0x80 ? Buffer.of(seq.length) : Buffer.of(0x81, seq.length), seq]);
}

/** AES-KWP (RFC 5649) with node:crypto, i.e. OpenSSL's implementation. */
function kwp(kek: Uint8Array, data: Uint8Array, direction: 'wrap' | 'unwrap'): Buffer {
  const iv = Buffer.from('a65959a6', 'hex');
  const cipher = direction === 'wrap' ? createCipheriv('id-aes256-wrap-pad', kek, iv) : createDecipheriv('id-aes256-wrap-pad', kek, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

// ---- the server, through the module ----
const kernelLogMark = dmesgLines().length;
const kernel = await setupKernelTransports();
const fixture = await startFixture();
t.teardown(async () => {
  t.comment(`module counters after crypto-e2e: ${await countersText(kernel.admin)}`);
  await fixture.close();
  await kernel.teardown();
  rmSync(dir, { recursive: true, force: true });
});
const session = await (await fixture.client()).login(ALICE.name, ALICE.password);

const message = Buffer.from('VHSM end to end: pay 100 EUR to Bob, ref 2026-11-24\n');
const msgFile = file('msg', message);
const otherMsgFile = file('msg-other', Buffer.concat([message, Buffer.from('!')]));
const big = randomBytes(100_000); // more than one netlink message: streamed
const bigFile = file('big', big);

/** A server key's public half as a PEM file. */
async function publicPem(keyId: string, name: string): Promise<string> {
  return file(name, await session.publicKey(keyId, 'spki-pem'));
}

// RSA keys are generated once (keygen is slow under emulation).
const rsaSign = await session.generateKey({ type: 'rsa-2048', label: 'e2e sign' });
const rsaCrypt = await session.generateKey({ type: 'rsa-2048', label: 'e2e crypt', usages: ['encrypt', 'decrypt', 'unwrap'], extractable: true });
const outsideRsaPem = file('outside-rsa.pem');
openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', outsideRsaPem]);
const outsideRsaPub = file('outside-rsa.pub.pem', openssl(['pkey', '-in', outsideRsaPem, '-pubout']));

t.test('ECDSA on the four curves: DER signatures verify with openssl dgst', async (t) => {
  const curves: [KeyTypeName, string][] = [
    ['ec-p256', 'sha256'],
    ['ec-p384', 'sha384'],
    ['ec-p521', 'sha512'],
    ['ec-secp256k1', 'sha256'],
  ];
  for (const [type, hash] of curves) {
    const key = await session.generateKey({ type });
    const pub = await publicPem(key.keyId, `${type}.pub.pem`);
    const signature = await session.sign(key.keyId, message);
    const sig = file(`${type}.sig`, signature);
    t.ok(opensslVerifies(['dgst', `-${hash}`, '-verify', pub, '-signature', sig, msgFile]), `${type}: openssl verifies the ecdsa-${hash} signature`);
    t.notOk(opensslVerifies(['dgst', `-${hash}`, '-verify', pub, '-signature', sig, otherMsgFile]), `${type}: and rejects it for another message`);
    if (type === 'ec-secp256k1') {
      t.notOk(secp256k1.Signature.fromBytes(signature, 'der').hasHighS(), 'secp256k1: the signature is low-S');
    }
  }
});

t.test('ECDSA raw (r || s) and prehashed; the server verifies an openssl signature', async (t) => {
  const key = await session.generateKey({ type: 'ec-p256', extractable: true });
  const pub = await publicPem(key.keyId, 'p256b.pub.pem');
  const raw = await session.sign(key.keyId, message, { encoding: 'raw' });
  t.equal(raw.length, 64, 'raw encoding: 64 bytes');
  t.ok(opensslVerifies(['dgst', '-sha256', '-verify', pub, '-signature', file('p256-raw.der', rawToDer(raw)), msgFile]), 'raw r || s, re-encoded as DER, verifies with openssl');

  const digest = createHash('sha256').update(message).digest();
  t.same(openssl(['dgst', '-sha256', '-binary', msgFile]), digest, '(openssl agrees on the digest)');
  const pre = file('p256-pre.sig', await session.sign(key.keyId, digest, { prehashed: true }));
  t.ok(opensslVerifies(['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-in', file('digest256', digest), '-sigfile', pre, '-pkeyopt', 'digest:sha256']), 'prehashed (the @noble path): openssl pkeyutl verifies it over the digest');
  t.ok(opensslVerifies(['dgst', '-sha256', '-verify', pub, '-signature', pre, msgFile]), 'and openssl dgst over the message');

  // The other direction: openssl signs with the exported private key, the server verifies.
  const pkcs8 = file('p256b.der', await session.exportKey(key.keyId, 'pkcs8-der'));
  const outside = openssl(['dgst', '-sha256', '-keyform', 'DER', '-sign', pkcs8, msgFile]);
  t.ok(await session.verify(key.keyId, message, outside), 'the server verifies a signature made by openssl with the exported key');
  t.notOk(await session.verify(key.keyId, Buffer.concat([message, Buffer.from('!')]), outside), 'and not for another message');
});

t.test('Ed25519: openssl pkeyutl -rawin verifies', async (t) => {
  const key = await session.generateKey({ type: 'ed25519' });
  const pub = await publicPem(key.keyId, 'ed25519.pub.pem');
  const sig = file('ed25519.sig', await session.sign(key.keyId, message));
  t.ok(opensslVerifies(['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', msgFile, '-sigfile', sig]), 'openssl verifies the Ed25519 signature');
  t.notOk(opensslVerifies(['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', otherMsgFile, '-sigfile', sig]), 'and rejects it for another message');
});

t.test('BIP-340 Schnorr: verified with @noble/curves here (OpenSSL 3.0 has none)', async (t) => {
  const key = await session.generateKey({ type: 'ec-secp256k1' });
  const xOnly = Buffer.from((await session.publicKey(key.keyId, 'jwk')).x!, 'base64url');
  const signature = await session.sign(key.keyId, message, { algorithm: 'bip340' });
  t.equal(signature.length, 64, '64-byte signature');
  t.ok(schnorr.verify(signature, message, xOnly), '@noble schnorr verifies it against the x-only public key');
  t.notOk(schnorr.verify(signature, Buffer.concat([message, Buffer.from('!')]), xOnly), 'and rejects it for another message');
});

t.test('RSA-2048: PSS and PKCS#1 v1.5, plain and prehashed, verify with openssl dgst', async (t) => {
  const pub = await publicPem(rsaSign.keyId, 'rsa-sign.pub.pem');
  const PSS = ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:-1'];
  const cases: [SignatureAlgorithmName, string, string[]][] = [
    ['rsa-pss-sha256', 'sha256', PSS],
    ['rsa-pss-sha512', 'sha512', PSS],
    ['rsa-pkcs1-sha256', 'sha256', []],
    ['rsa-pkcs1-sha384', 'sha384', []],
  ];
  for (const [algorithm, hash, opts] of cases) {
    const sig = file(`${algorithm}.sig`, await session.sign(rsaSign.keyId, message, { algorithm }));
    t.equal(read(`${algorithm}.sig`).length, 256, `${algorithm}: modulus-length signature`);
    t.ok(opensslVerifies(['dgst', `-${hash}`, ...opts, '-verify', pub, '-signature', sig, msgFile]), `${algorithm}: openssl verifies it${opts.length ? ' (salt length = hash length)' : ''}`);
    t.notOk(opensslVerifies(['dgst', `-${hash}`, ...opts, '-verify', pub, '-signature', sig, otherMsgFile]), `${algorithm}: and rejects it for another message`);
  }
  const digest = createHash('sha256').update(message).digest();
  for (const [algorithm, opts] of [
    ['rsa-pss-sha256', PSS],
    ['rsa-pkcs1-sha256', []],
  ] as const) {
    const sig = file(`${algorithm}-pre.sig`, await session.sign(rsaSign.keyId, digest, { algorithm, prehashed: true }));
    t.ok(opensslVerifies(['dgst', '-sha256', ...opts, '-verify', pub, '-signature', sig, msgFile]), `${algorithm} prehashed: openssl verifies it over the message`);
  }
});

t.test('HMAC-SHA256/384/512 (one message and streamed) equal openssl dgst -mac HMAC', async (t) => {
  const key = await session.generateKey({ type: 'hmac', lengthBytes: 64, extractable: true });
  const hexKey = toHex(await session.exportKey(key.keyId, 'raw'));
  for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
    const mac = await session.mac(key.keyId, message, { algorithm: `hmac-${hash}` });
    const outside = openssl(['dgst', `-${hash}`, '-mac', 'HMAC', '-macopt', `hexkey:${hexKey}`, '-binary', msgFile]);
    t.same(Buffer.from(mac), outside, `hmac-${hash}: the server's MAC equals openssl's`);
    t.ok(await session.verifyMac(key.keyId, message, outside, { algorithm: `hmac-${hash}` }), `hmac-${hash}: the server accepts openssl's MAC`);
  }
  const streamed = await session.mac(key.keyId, big, { algorithm: 'hmac-sha512' });
  t.same(Buffer.from(streamed), openssl(['dgst', '-sha512', '-mac', 'HMAC', '-macopt', `hexkey:${hexKey}`, '-binary', bigFile]), `streamed hmac-sha512 of ${big.length} bytes equals openssl's`);
});

t.test('digests: SHA-2 and SHA3 equal openssl dgst', async (t) => {
  for (const algorithm of ['sha256', 'sha384', 'sha512', 'sha3-256', 'sha3-512'] as const) {
    t.same(Buffer.from(await session.digest(message, { algorithm })), openssl(['dgst', `-${algorithm}`, '-binary', msgFile]), `${algorithm}`);
  }
  t.same(Buffer.from(await session.digest(big, { algorithm: 'sha3-256' })), openssl(['dgst', '-sha3-256', '-binary', bigFile]), `streamed sha3-256 of ${big.length} bytes`);
});

t.test('AES-256-GCM and ChaCha20-Poly1305: opened and sealed with node:crypto here', async (t) => {
  const aad = Buffer.from('header: v1');
  const plaintext = Buffer.concat([message, randomBytes(1000)]);
  for (const [type, cipherName] of [
    ['aes-256', 'aes-256-gcm'],
    ['chacha20', 'chacha20-poly1305'],
  ] as const) {
    const key = await session.generateKey({ type, extractable: true });
    const raw = await session.exportKey(key.keyId, 'raw');
    t.equal(raw.length, 32, `${type}: 32-byte key exported`);
    const sealed = await session.encrypt(key.keyId, plaintext, { aad });
    t.equal(sealed.nonce.length, 12, `${cipherName}: 12-byte nonce`);
    t.equal(sealed.tag.length, 16, `${cipherName}: 16-byte tag`);
    // Typed as GCM: node's chacha20-poly1305 has the same AEAD interface (setAAD, setAuthTag).
    const decipher = createDecipheriv(cipherName as CipherGCMTypes, raw, sealed.nonce, { authTagLength: 16 });
    decipher.setAAD(aad, { plaintextLength: sealed.ciphertext.length });
    decipher.setAuthTag(sealed.tag);
    t.same(Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]), plaintext, `${cipherName}: node:crypto decrypts the server's ciphertext`);

    const nonce = randomBytes(12);
    const cipher = createCipheriv(cipherName as CipherGCMTypes, raw, nonce, { authTagLength: 16 });
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const outside = { nonce, ciphertext, tag: cipher.getAuthTag() };
    t.same(Buffer.from(await session.decrypt(key.keyId, outside, { aad })), plaintext, `${cipherName}: the server decrypts node:crypto's ciphertext`);

    await expectCode(t, session.decrypt(key.keyId, { ...outside, tag: flipped(outside.tag, 15, 7) }, { aad }), 'DECRYPT_FAILED', `${cipherName}: a tampered tag`);
    await expectCode(t, session.decrypt(key.keyId, { ...outside, ciphertext: flipped(ciphertext, 3) }, { aad }), 'DECRYPT_FAILED', `${cipherName}: a tampered ciphertext`);
    await expectCode(t, session.decrypt(key.keyId, outside, { aad: Buffer.from('header: v2') }), 'DECRYPT_FAILED', `${cipherName}: other associated data`);
  }
});

t.test('RSA-OAEP-SHA256: openssl pkeyutl encrypts for the server and decrypts the server\'s', async (t) => {
  const pub = await publicPem(rsaCrypt.keyId, 'rsa-crypt.pub.pem');
  const priv = file('rsa-crypt.der', await session.exportKey(rsaCrypt.keyId, 'pkcs8-der'));
  t.same(openssl(['pkey', '-inform', 'DER', '-in', priv, '-pubout']), read('rsa-crypt.pub.pem'), 'the exported PKCS#8 is the key behind the public key');

  const secret = randomBytes(190); // the OAEP-SHA256 maximum for 2048 bits
  const ciphertext = openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', pub, ...OAEP], secret);
  t.same(Buffer.from(await session.decrypt(rsaCrypt.keyId, { nonce: new Uint8Array(0), ciphertext, tag: new Uint8Array(0) })), secret, 'the server decrypts what openssl encrypted (190 bytes)');
  const sealed = await session.encrypt(rsaCrypt.keyId, message);
  t.equal(sealed.ciphertext.length, 256, 'the server\'s ciphertext is modulus length');
  t.same(openssl(['pkeyutl', '-decrypt', '-keyform', 'DER', '-inkey', priv, ...OAEP], sealed.ciphertext), message, 'openssl decrypts what the server encrypted');
  await expectCode(t, session.decrypt(rsaCrypt.keyId, { nonce: new Uint8Array(0), ciphertext: flipped(ciphertext, 100), tag: new Uint8Array(0) }), 'DECRYPT_FAILED', 'a tampered OAEP ciphertext');
});

t.test('key agreement: ECDH P-256/P-384 and X25519 equal openssl pkeyutl -derive', async (t) => {
  for (const [type, genArgs] of [
    ['ec-p256', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']],
    ['ec-p384', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']],
    ['x25519', ['-algorithm', 'X25519']],
  ] as const) {
    const key = await session.generateKey({ type, usages: ['derive'] });
    const pub = await publicPem(key.keyId, `${type}-agree.pub.pem`);
    const peer = file(`${type}-peer.pem`);
    openssl(['genpkey', ...genArgs, '-out', peer]);
    const peerPub = openssl(['pkey', '-in', peer, '-pubout']).toString();
    const expected = openssl(['pkeyutl', '-derive', '-inkey', peer, '-peerkey', pub]);
    const agreed = await session.agreeKey(key.keyId, peerPub, { extractable: true });
    t.equal(agreed.key.type, 'secret', `${type}: stored as a secret key`);
    t.same(Buffer.from(agreed.material!), expected, `${type}: the shared secret (${expected.length} bytes) equals openssl's`);
    if (type === 'x25519') {
      const salt = randomBytes(16);
      const info = Buffer.from('vhsm e2e');
      const viaKdf = await session.agreeKey(key.keyId, peerPub, { type: 'aes-256', extractable: true, kdf: { salt, info } });
      const outside = openssl(['kdf', '-binary', '-keylen', '32', '-kdfopt', 'digest:SHA256', '-kdfopt', `hexkey:${toHex(expected)}`, '-kdfopt', `hexsalt:${toHex(salt)}`, '-kdfopt', `hexinfo:${toHex(info)}`, 'HKDF']);
      t.same(Buffer.from(viaKdf.material!), outside, 'x25519 + HKDF-SHA256 into an AES key equals openssl kdf over openssl\'s secret');
    }
  }
});

t.test('HKDF-SHA256 (deriveKey) equals openssl kdf HKDF', async (t) => {
  const ikm = randomBytes(32);
  const base = await session.importKey({ type: 'secret', format: 'raw', keyData: ikm });
  const salt = randomBytes(32);
  const info = Buffer.from('vhsm e2e hkdf');
  const derived = await session.deriveKey(base.keyId, { type: 'hmac', lengthBytes: 48, extractable: true, kdf: { salt, info } });
  t.equal(derived.key.type, 'hmac', 'stored as an hmac key');
  const outside = openssl(['kdf', '-binary', '-keylen', '48', '-kdfopt', 'digest:SHA256', '-kdfopt', `hexkey:${toHex(ikm)}`, '-kdfopt', `hexsalt:${toHex(salt)}`, '-kdfopt', `hexinfo:${toHex(info)}`, 'HKDF']);
  t.same(Buffer.from(derived.material!), outside, 'the 48-byte output equals openssl\'s');
  const mac = await session.mac(derived.key.keyId, message);
  t.same(Buffer.from(mac), openssl(['dgst', '-sha256', '-mac', 'HMAC', '-macopt', `hexkey:${toHex(outside)}`, '-binary', msgFile]), 'and the derived key MACs like openssl with that material');
});

t.test('random: the requested length, not constant, not repeated', async (t) => {
  const a = await session.random(4096);
  const b = await session.random(32);
  t.equal(a.length, 4096, '4096 bytes');
  t.equal(b.length, 32, '32 bytes');
  t.ok(new Set(a).size > 200, `not all equal (${new Set(a).size} distinct byte values in 4096)`);
  t.not(toHex(b), toHex(a.subarray(0, 32)), 'two calls differ');
  await expectCode(t, session.random(4097), 'INVALID_ARGUMENT', 'more than 4096 bytes');
});

t.test('BYOK import: wrapped outside with openssl OAEP + node:crypto AES-KWP', async (t) => {
  const wrapPub = await publicPem(rsaCrypt.keyId, 'rsa-crypt.pub.pem');
  const wrapFor = (material: Uint8Array): Buffer => {
    const kek = randomBytes(32);
    return Buffer.concat([openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', wrapPub, ...OAEP], kek), kwp(kek, material, 'wrap')]);
  };
  // A key pair made by openssl, as PKCS#8.
  const ecPem = file('byok-ec.pem');
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ecPem]);
  const ecPub = openssl(['pkey', '-in', ecPem, '-pubout']);
  const pkcs8 = openssl(['pkcs8', '-topk8', '-nocrypt', '-in', ecPem, '-outform', 'DER']);
  const imported = await session.importWrappedKey({ type: 'ec-p256', wrappingKeyId: rsaCrypt.keyId, wrappedKey: wrapFor(pkcs8) });
  t.equal(await session.publicKey(imported.keyId, 'spki-pem'), ecPub.toString(), 'ec-p256 (PKCS#8): the server has openssl\'s public key');
  const sig = file('byok-ec.sig', await session.sign(imported.keyId, message));
  t.ok(opensslVerifies(['dgst', '-sha256', '-verify', file('byok-ec.pub.pem', ecPub), '-signature', sig, msgFile]), 'its signatures verify with openssl against the original public key');
  t.ok(await session.verify(imported.keyId, message, openssl(['dgst', '-sha256', '-sign', ecPem, msgFile])), 'and it verifies openssl\'s signatures');

  // A secret key, raw.
  const macKey = randomBytes(32);
  const hmacKey = await session.importWrappedKey({ type: 'hmac', wrappingKeyId: rsaCrypt.keyId, wrappedKey: wrapFor(macKey) });
  t.same(Buffer.from(await session.mac(hmacKey.keyId, message)), openssl(['dgst', '-sha256', '-mac', 'HMAC', '-macopt', `hexkey:${toHex(macKey)}`, '-binary', msgFile]), 'hmac (raw): MACs like openssl with the original key');

  const before = await snapshot(fixture.dbPath);
  await expectCode(t, session.importWrappedKey({ type: 'hmac', wrappingKeyId: rsaCrypt.keyId, wrappedKey: flipped(wrapFor(macKey), 256 + 3) }), 'DECRYPT_FAILED', 'a flipped bit in the KWP part');
  t.equal(await snapshot(fixture.dbPath), before, 'the refused import stored nothing');
});

t.test('wrapped export: opened outside with openssl OAEP + node:crypto AES-KWP', async (t) => {
  const unwrapOutside = (blob: Uint8Array): Buffer => {
    const kek = openssl(['pkeyutl', '-decrypt', '-inkey', outsideRsaPem, ...OAEP], blob.subarray(0, 256));
    t.equal(kek.length, 32, 'the ephemeral key is AES-256');
    return kwp(kek, blob.subarray(256), 'unwrap');
  };
  const aes = await session.generateKey({ type: 'aes-256', extractable: true });
  const plain = Buffer.from(await session.exportKey(aes.keyId, 'raw'));
  t.same(unwrapOutside(await session.exportWrappedKey(aes.keyId, { publicKey: readFileSync(outsideRsaPub, 'utf8') })), plain, 'aes-256: the unwrapped material equals the exported key');

  const ed = await session.generateKey({ type: 'ed25519', extractable: true });
  const pkcs8 = file('exported-ed.der', unwrapOutside(await session.exportWrappedKey(ed.keyId, { publicKey: readFileSync(outsideRsaPub, 'utf8') })));
  t.equal(openssl(['pkey', '-inform', 'DER', '-in', pkcs8, '-pubout']).toString(), await session.publicKey(ed.keyId, 'spki-pem'), 'ed25519 as PKCS#8: openssl derives the server\'s public key from it');
  const sig = openssl(['pkeyutl', '-sign', '-keyform', 'DER', '-inkey', pkcs8, '-rawin', '-in', msgFile]);
  t.ok(await session.verify(ed.keyId, message, sig), 'the server verifies what openssl signed with the unwrapped key');
});

t.test('refusals through the kernel: wrong usage, wrong key type; nothing changes', async (t) => {
  const hmacKey = await session.generateKey({ type: 'hmac' });
  const aes = await session.generateKey({ type: 'aes-256', usages: ['encrypt'] });
  const p256 = await session.generateKey({ type: 'ec-p256' });
  const sealed = await session.encrypt(aes.keyId, message);
  const before = await snapshot(fixture.dbPath);
  await expectCode(t, session.sign(rsaCrypt.keyId, message), 'USAGE_NOT_ALLOWED', 'sign with an encrypt/decrypt/unwrap RSA key');
  await expectCode(t, session.decrypt(rsaSign.keyId, { nonce: new Uint8Array(0), ciphertext: randomBytes(256), tag: new Uint8Array(0) }), 'USAGE_NOT_ALLOWED', 'decrypt with a sign/verify RSA key');
  await expectCode(t, session.encrypt(hmacKey.keyId, message), 'USAGE_NOT_ALLOWED', 'encrypt with an HMAC key');
  await expectCode(t, session.decrypt(aes.keyId, sealed), 'USAGE_NOT_ALLOWED', 'decrypt with an encrypt-only AES key');
  await expectCode(t, session.agreeKey(p256.keyId, readFileSync(outsideRsaPub, 'utf8')), 'USAGE_NOT_ALLOWED', 'ECDH with a sign/verify EC key');
  await expectCode(t, session.sign(p256.keyId, message, { algorithm: 'rsa-pss-sha256' }), 'WRONG_KEY_TYPE', 'an RSA algorithm on an EC key');
  await expectCode(t, session.sign(p256.keyId, message.subarray(0, 20), { prehashed: true }), 'INVALID_ARGUMENT', 'a prehashed input of the wrong length');
  t.equal(await snapshot(fixture.dbPath), before, 'the refused operations changed nothing stored');
});

t.test('the kernel log stays clean', async (t) => {
  const lines = dmesgLines().slice(kernelLogMark - 1);
  t.same(lines.filter((line) => BAD_KERNEL_LOG.test(line)), [], `no warnings, bugs or oopses in what this file logged (${lines.length - 1} lines)`);
});
