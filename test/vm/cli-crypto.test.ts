/**
 * The `vhsm` CLI's crypto subcommands end to end through the module: each
 * new subcommand once from a client container, its result checked outside
 * the server — with the openssl CLI where it has the algorithm (RSA-OAEP,
 * X25519, HKDF, SHA3, HMAC, ECDSA), otherwise node:crypto (AES-GCM, AES-KWP).
 * Keys come from openssl and are imported, so both sides know them; RSA is
 * 2048 bits (keygen is slow under emulation) and no RSA-4096 default
 * wrapping key is ever generated: an imported RSA-2048 key takes its id.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { VhsmWorld } from './lib/vhsm-world.js';

const ALICE = { name: 'alice', password: 'alice-crypto-Pa55', ctids: [101] };
const OAEP = ['-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256', '-pkeyopt', 'rsa_mgf1_md:sha256'];

/** Runs openssl; throws (with its stderr) on a non-zero exit. */
const openssl = (args: readonly string[], input?: Uint8Array): Buffer =>
  execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 20 });

/** AES-KWP (RFC 5649) with node:crypto. */
function kwp(kek: Uint8Array, data: Uint8Array, direction: 'wrap' | 'unwrap'): Buffer {
  const iv = Buffer.from('a65959a6', 'hex');
  const cipher = direction === 'wrap' ? createCipheriv('id-aes256-wrap-pad', kek, iv) : createDecipheriv('id-aes256-wrap-pad', kek, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

function gcmOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, aad: Uint8Array): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
}

interface DerivedJson {
  keyId: string;
  type: string;
  extractable: boolean;
  material: string;
  encoding: string;
}

t.test('vhsm CLI: encryption, agreement, derivation, random, BYOK, prehashed, streaming', async (t) => {
  const vw = await VhsmWorld.create({ clients: { ct101: 101 }, users: [ALICE] });
  t.teardown(() => vw.destroy());
  const alice = (args: string[]) => vw.as('alice', 'ct101', args);
  const path = (name: string): string => `${vw.dir}/${name}`;
  const message = Buffer.from('VHSM CLI: pay 100 EUR to Bob, ref 2026-11-24\n');
  const msg = vw.file('msg', message);
  const big = randomBytes(100_000); // three full stream chunks and a bit
  const bigFile = vw.file('big.bin', big);

  // Outside keys: made by openssl, imported where the server needs them.
  const rsaPem = path('rsa.pem');
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', rsaPem]);
  const rsaPub = vw.file('rsa.pub.pem', openssl(['pkey', '-in', rsaPem, '-pubout']));

  await t.test('RSA-OAEP and the wrapping key: openssl encrypts, vhsm decrypts', async (t) => {
    const imported = await alice(['keys', 'import', '--type', 'rsa-2048', '--format', 'pkcs8-der', '--id', 'vhsm-wrapping-key', '--usage', 'decrypt', '--usage', 'unwrap', '--in', rsaPem]);
    t.equal(imported.status, 0, `an RSA-2048 key as the default wrapping key (${imported.stderr})`);
    const wrapping = await alice(['keys', 'wrapping-key', '--json']);
    t.equal(wrapping.status, 0, `keys wrapping-key (${wrapping.stderr})`);
    const wk = wrapping.json<{ keyId: string; publicKey: string; key: { type: string; usages: string[] } }>();
    t.equal(wk.keyId, 'vhsm-wrapping-key');
    t.equal(wk.publicKey, readFileSync(rsaPub, 'utf8'), 'the PEM is the one openssl derives from the private key');
    t.match(wk.key, { type: 'rsa-2048', usages: ['decrypt', 'unwrap'] });

    const sealed = vw.file('oaep.bin', openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', rsaPub, ...OAEP], message));
    const opened = await alice(['decrypt', 'vhsm-wrapping-key', '--in', sealed, '-e', 'raw', '--out', path('oaep.out')]);
    t.equal(opened.status, 0, `decrypt (${opened.stderr})`);
    t.same(readFileSync(path('oaep.out')), message, 'the plaintext openssl encrypted');
    t.equal(statSync(path('oaep.out')).mode & 0o777, 0o600, 'plaintext written 0600');
  });

  await t.test('AES-256-GCM: framed and JSON output, round trip, tampering', async (t) => {
    const key = randomBytes(32);
    const aad = Buffer.from('tenant=42');
    t.equal((await alice(['keys', 'import', '--type', 'aes-256', '--format', 'raw', '--id', 'aes1', '--in', vw.file('aes.key', key)])).status, 0, 'import a known AES key');

    const enc = await alice(['encrypt', 'aes1', '--in', msg, '--aad-file', vw.file('aad', aad), '-e', 'raw', '--out', path('ct.bin')]);
    t.equal(enc.status, 0, `encrypt (${enc.stderr})`);
    const framed = readFileSync(path('ct.bin'));
    t.equal(framed.length, 12 + message.length + 16, 'nonce (12) ‖ ciphertext ‖ tag (16)');
    t.same(gcmOpen(key, framed.subarray(0, 12), framed.subarray(12, -16), framed.subarray(-16), aad), message, 'node:crypto opens it with the key and AAD');

    const dec = await alice(['decrypt', 'aes1', '--in', path('ct.bin'), '--aad', aad.toString('hex'), '-e', 'raw']);
    t.equal(dec.status, 0, `decrypt with --aad in hex (${dec.stderr})`);
    t.same(dec.stdout, message, 'round trip');

    const tampered = Buffer.from(framed);
    tampered[tampered.length - 1]! ^= 1;
    const bad = await alice(['decrypt', 'aes1', '--in', vw.file('ct-bad.bin', tampered), '--aad', aad.toString('hex'), '--json']);
    t.equal(bad.status, 15, 'a flipped tag bit: exit 15');
    t.match(bad.json(), { error: { code: 'DECRYPT_FAILED', exitCode: 15 } });
    t.match(bad.stderr, /decryption failed .*nothing was released/);

    const asJson = await alice(['encrypt', 'aes1', '--in', msg, '--json', '--out', path('ct.json')]);
    t.equal(asJson.status, 0, `encrypt --json (${asJson.stderr})`);
    const object = JSON.parse(readFileSync(path('ct.json'), 'utf8')) as { keyId: string; nonce: string; ciphertext: string; tag: string; encoding: string };
    t.match(object, { keyId: 'aes1', encoding: 'hex', nonce: /^[0-9a-f]{24}$/, tag: /^[0-9a-f]{32}$/ });
    const hex = (s: string): Buffer => Buffer.from(s, 'hex');
    t.same(gcmOpen(key, hex(object.nonce), hex(object.ciphertext), hex(object.tag), Buffer.alloc(0)), message, 'node:crypto opens the JSON fields');
    const back = await alice(['decrypt', 'aes1', '--in', path('ct.json'), '--in-format', 'json', '--json']);
    t.equal(back.status, 0, `decrypt --in-format json (${back.stderr})`);
    t.same(back.json(), { keyId: 'aes1', plaintext: message.toString('hex'), encoding: 'hex' });
  });

  await t.test('random, and a 100 KB digest streamed', async (t) => {
    const random = await alice(['random', '32', '-e', 'raw']);
    t.equal(random.status, 0, `random (${random.stderr})`);
    t.equal(random.stdout.length, 32, '32 raw bytes');
    const digest = await alice(['digest', '--algorithm', 'sha3-256', '--in', bigFile]);
    t.equal(digest.status, 0, `digest of 100 KB (${digest.stderr})`);
    const expected = /= ([0-9a-f]{64})/.exec(openssl(['dgst', '-sha3-256', bigFile]).toString())![1];
    t.equal(digest.out.trim(), expected, 'equals openssl dgst -sha3-256');
  });

  await t.test('X25519 agreement and HKDF derivation equal openssl', async (t) => {
    const mine = path('x1.pem');
    const peer = path('peer.pem');
    openssl(['genpkey', '-algorithm', 'X25519', '-out', mine]);
    openssl(['genpkey', '-algorithm', 'X25519', '-out', peer]);
    const peerPub = vw.file('peer.pub.pem', openssl(['pkey', '-in', peer, '-pubout']));
    t.equal((await alice(['keys', 'import', '--type', 'x25519', '--format', 'pkcs8-der', '--id', 'x1', '--in', mine])).status, 0, 'import an X25519 key');

    const agreed = await alice(['agree', 'x1', '--peer', peerPub, '--id', 'shared', '--extractable', '--json']);
    t.equal(agreed.status, 0, `agree (${agreed.stderr})`);
    const shared = agreed.json<DerivedJson>();
    t.match(shared, { keyId: 'shared', type: 'secret', extractable: true, encoding: 'hex' });
    const expected = openssl(['pkeyutl', '-derive', '-inkey', peer, '-peerkey', vw.file('x1.pub.pem', openssl(['pkey', '-in', mine, '-pubout']))]);
    t.equal(shared.material, expected.toString('hex'), 'the shared secret openssl pkeyutl -derive computes from the other side');

    const salt = '000102030405060708090a0b0c';
    const info = Buffer.from('vhsm cli hmac v1').toString('hex');
    const derived = await alice(['derive', 'shared', '--type', 'hmac', '--salt', salt, '--info', info, '--id', 'hk', '--extractable', '--json']);
    t.equal(derived.status, 0, `derive (${derived.stderr})`);
    const hk = derived.json<DerivedJson>();
    t.match(hk, { keyId: 'hk', type: 'hmac' });
    const okm = openssl(['kdf', '-keylen', '32', '-kdfopt', 'digest:SHA256', '-kdfopt', `hexkey:${shared.material}`, '-kdfopt', `hexsalt:${salt}`, '-kdfopt', `hexinfo:${info}`, 'HKDF']);
    t.equal(hk.material, okm.toString().trim().replace(/:/g, '').toLowerCase(), 'HKDF-SHA256 output equals openssl kdf HKDF');

    const wrapped = await alice(['keys', 'export-wrapped', 'hk', '--to', rsaPub, '-e', 'raw', '--out', path('hk.wrapped')]);
    t.equal(wrapped.status, 0, `export-wrapped to an RSA public key (${wrapped.stderr})`);
    const blob = readFileSync(path('hk.wrapped'));
    const kek = openssl(['pkeyutl', '-decrypt', '-inkey', rsaPem, ...OAEP], blob.subarray(0, 256));
    t.equal(kwp(kek, blob.subarray(256), 'unwrap').toString('hex'), hk.material, 'openssl OAEP + AES-KWP unwrap give the derived key');
  });

  await t.test('BYOK import, then HMAC over 100 KB streamed', async (t) => {
    const secret = randomBytes(32);
    const kek = randomBytes(32);
    const blob = Buffer.concat([openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', rsaPub, ...OAEP], kek), kwp(kek, secret, 'wrap')]);
    const imported = await alice(['keys', 'import-wrapped', '--type', 'hmac', '--id', 'byok-mac', '--in', vw.file('byok.wrapped', blob)]);
    t.equal(imported.status, 0, `import-wrapped with the default wrapping key (${imported.stderr})`);
    t.equal(imported.out, 'byok-mac\n', 'prints the key id');

    const mac = await alice(['mac', 'byok-mac', '--in', bigFile, '--out', path('big.mac')]);
    t.equal(mac.status, 0, `mac over 100 KB (${mac.stderr})`);
    t.equal(readFileSync(path('big.mac'), 'utf8').trim(), createHmac('sha256', secret).update(big).digest('hex'), 'HMAC-SHA256 with the wrapped-in secret');
    const valid = await alice(['verify-mac', 'byok-mac', '--in', bigFile, '--mac', path('big.mac')]);
    t.equal(valid.status, 0, `verify-mac over 100 KB: valid (${valid.stderr})`);
  });

  await t.test('sign --prehashed: ECDSA P-256 over a digest, openssl verifies over the message', async (t) => {
    const ecPem = path('ec.pem');
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ecPem]);
    const ecPub = vw.file('ec.pub.pem', openssl(['pkey', '-in', ecPem, '-pubout']));
    t.equal((await alice(['keys', 'import', '--type', 'ec-p256', '--format', 'pkcs8-der', '--id', 'ec1', '--in', ecPem])).status, 0, 'import a P-256 key');
    const digest = createHash('sha256').update(message).digest('hex');
    const sig = await alice(['sign', 'ec1', '--prehashed', '--in-encoding', 'hex', '-e', 'raw', '--out', path('pre.sig'), '--in', vw.file('digest.hex', `${digest}\n`)]);
    t.equal(sig.status, 0, `sign --prehashed (${sig.stderr})`);
    t.match(openssl(['dgst', '-sha256', '-verify', ecPub, '-signature', path('pre.sig'), msg]).toString(), /Verified OK/, 'openssl dgst -sha256 -verify over the message');
  });
});
