/**
 * Cross-checks against independent implementations: signatures made by the
 * server verify with @noble/curves and with node:crypto using the exported
 * public key (SPKI DER, PEM and JWK); signatures made by @noble with an
 * imported key verify on the server; HMAC and SHA-256 match @noble/hashes.
 */
import t from 'tap';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, verify as nodeVerify } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { ALICE, startFixture } from './helpers/fixture.js';

const messages = [new Uint8Array(0), Uint8Array.of(0), randomBytes(1), randomBytes(100), randomBytes(4096), randomBytes(30_000)];

/** The uncompressed P-256 point (0x04 || x || y) from a JWK. */
function p256Point(jwk: { x?: string; y?: string }): Uint8Array {
  return Buffer.concat([Buffer.of(4), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

t.test('ECDSA P-256: server signatures verify with @noble/curves and node:crypto', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const key = await session.generateKey({ type: 'ec-p256' });
  const der = await session.publicKey(key.keyId, 'spki-der');
  const pem = await session.publicKey(key.keyId, 'spki-pem');
  const jwk = await session.publicKey(key.keyId, 'jwk');
  t.match(pem, /^-----BEGIN PUBLIC KEY-----\n/, 'PEM');
  t.equal(jwk.crv, 'P-256', 'JWK');
  const fromDer = createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
  const fromPem = createPublicKey(pem);
  const fromJwk = createPublicKey({ key: jwk, format: 'jwk' });
  t.ok(fromDer.equals(fromPem) && fromDer.equals(fromJwk), 'the three exports are the same key');
  const point = p256Point(jwk);

  for (const message of messages) {
    const signatureDer = await session.sign(key.keyId, message);
    const signatureRaw = await session.sign(key.keyId, message, { encoding: 'raw' });
    t.equal(signatureRaw.length, 64, `raw signature is r||s (${message.length}-byte message)`);
    t.ok(p256.verify(signatureDer, message, point, { format: 'der', lowS: false }), `@noble verifies the DER signature (${message.length} bytes)`);
    t.ok(p256.verify(signatureRaw, message, point, { format: 'compact', lowS: false }), '@noble verifies the raw signature');
    t.ok(nodeVerify('sha256', message, fromDer, signatureDer), 'node:crypto verifies with the SPKI DER key');
    t.ok(nodeVerify('sha256', message, { key: fromJwk, dsaEncoding: 'ieee-p1363' }, signatureRaw), 'node:crypto verifies raw with the JWK key');
    t.equal(await session.verify(key.keyId, message, signatureDer), true, 'the server verifies its own signature');
    const tampered = Buffer.from(message.length ? message : Uint8Array.of(1));
    tampered[0]! ^= 0x80;
    t.equal(await session.verify(key.keyId, tampered, signatureDer), false, 'and rejects it for another message');
  }
  t.equal(await session.verify(key.keyId, messages[1]!, randomBytes(70)), false, 'garbage DER is simply invalid');
});

t.test('ECDSA P-256: @noble signatures with an imported key verify on the server', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  const scalar = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  const key = await session.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: pkcs8 });
  const jwk = await session.publicKey(key.keyId, 'jwk');
  t.same(Buffer.from(p256Point(jwk)), Buffer.from(p256.getPublicKey(scalar, false)), 'the server derives the same public key as @noble');
  for (const message of messages) {
    const signature = p256.sign(message, scalar, { format: 'der' });
    t.equal(await session.verify(key.keyId, message, signature), true, `@noble DER signature verifies on the server (${message.length} bytes)`);
    const compact = p256.sign(message, scalar, { format: 'compact' });
    t.equal(await session.verify(key.keyId, message, compact, { encoding: 'raw' }), true, '@noble compact signature verifies as raw');
  }
});

t.test('Ed25519 both ways', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const generated = await session.generateKey({ type: 'ed25519' });
  const jwk = await session.publicKey(generated.keyId, 'jwk');
  const publicKey = Buffer.from(jwk.x!, 'base64url');
  const spki = createPublicKey({ key: Buffer.from(await session.publicKey(generated.keyId)), format: 'der', type: 'spki' });
  for (const message of messages) {
    const signature = await session.sign(generated.keyId, message);
    t.ok(ed25519.verify(signature, message, publicKey), `@noble verifies the server's Ed25519 signature (${message.length} bytes)`);
    t.ok(nodeVerify(null, message, spki, signature), 'node:crypto verifies it with the SPKI key');
  }

  const seed = randomBytes(32);
  const imported = await session.importKey({ type: 'ed25519', format: 'raw', keyData: seed });
  t.same(Buffer.from((await session.publicKey(imported.keyId, 'jwk')).x!, 'base64url'), Buffer.from(ed25519.getPublicKey(seed)), 'same public key from the seed');
  for (const message of messages) {
    const signature = ed25519.sign(message, seed);
    t.same(Buffer.from(await session.sign(imported.keyId, message)), Buffer.from(signature), 'deterministic: the server and @noble sign identically');
    t.equal(await session.verify(imported.keyId, message, signature), true, '@noble signature verifies on the server');
  }
  const pkcs8 = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: seed.toString('base64url'), x: Buffer.from(ed25519.getPublicKey(seed)).toString('base64url') }, format: 'jwk' }).export({ format: 'der', type: 'pkcs8' });
  const viaPkcs8 = await session.importKey({ type: 'ed25519', format: 'pkcs8-der', keyData: pkcs8, extractable: true });
  t.same(Buffer.from(await session.exportKey(viaPkcs8.keyId, 'raw')), seed, 'an extractable key exports its seed');
  t.same(Buffer.from(await session.exportKey(viaPkcs8.keyId, 'pkcs8-der')), pkcs8, 'and its PKCS#8');
});

t.test('HMAC-SHA256 and SHA-256 match @noble/hashes', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  for (const length of [16, 32, 64]) {
    const secret = randomBytes(length);
    const key = await session.importKey({ type: 'hmac', format: 'raw', keyData: secret });
    for (const message of messages) {
      const mac = await session.mac(key.keyId, message);
      t.same(Buffer.from(mac), Buffer.from(hmac(sha256, secret, message)), `HMAC with a ${length}-byte key over ${message.length} bytes`);
      t.equal(await session.verifyMac(key.keyId, message, hmac(sha256, secret, message)), true, '@noble MAC verifies on the server');
    }
  }
  const generated = await session.generateKey({ type: 'hmac', extractable: true });
  const secret = await session.exportKey(generated.keyId, 'raw');
  t.same(Buffer.from(await session.mac(generated.keyId, messages[3]!)), Buffer.from(hmac(sha256, secret, messages[3]!)), 'generated key, exported, matches');
  for (const message of messages) {
    t.same(Buffer.from(await session.digest(message)), Buffer.from(sha256(message)), `SHA-256 of ${message.length} bytes`);
  }
});
