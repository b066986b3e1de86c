/**
 * The `vhsm` CLI end to end through the module: every subcommand's happy
 * path from a client container, results checked outside the server
 * (openssl for signatures, node:crypto for MACs and digests).
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, verify as cryptoVerify } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { VhsmWorld } from './lib/vhsm-world.js';

const ALICE = { name: 'alice', password: 'correct horse battery staple', ctids: [101] };

interface KeyJson {
  keyId: string;
  type: string;
  usages: string[];
  extractable: boolean;
  useCount: number;
  lengthBytes: number;
}

const openssl = (args: string[]): { status: number; out: string } => {
  try {
    return { status: 0, out: execFileSync('openssl', args, { encoding: 'utf8', stdio: 'pipe' }) };
  } catch (error) {
    const e = error as { status?: number; stdout?: string; stderr?: string };
    return { status: e.status ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
};

t.test('vhsm CLI: every subcommand through the module', async (t) => {
  const vw = await VhsmWorld.create({ clients: { ct101: 101 }, users: [ALICE] });
  t.teardown(() => vw.destroy());
  const alice = (args: string[], input?: string | Buffer) => vw.as('alice', 'ct101', args, input === undefined ? {} : { input });
  const message = vw.file('message.txt', 'the quick brown fox jumps over the lazy dog\n');
  let ecKeyId = '';

  await t.test('login', async (t) => {
    const login = await alice(['login']);
    t.equal(login.status, 0, `exit 0 (${login.stderr})`);
    t.match(login.out, /login ok: alice/);
  });

  await t.test('keys generate, list, info', async (t) => {
    const ed = await alice(['keys', 'generate', '--type', 'ed25519', '--id', 'ed1', '--label', 'release signing']);
    t.equal(ed.status, 0, `generate ed25519 (${ed.stderr})`);
    t.equal(ed.out, 'ed1\n', 'prints the key id alone');
    const ec = await alice(['keys', 'generate', '--type', 'ec-p256', '--json']);
    t.equal(ec.status, 0, 'generate ec-p256 with a server-chosen id');
    const ecKey = ec.json<KeyJson>();
    t.match(ecKey, { type: 'ec-p256', usages: ['sign', 'verify'], extractable: false });
    t.match(ecKey.keyId, /^[0-9a-f]{32}$/);
    const hmac = await alice(['keys', 'gen', '--type', 'hmac', '--id', 'h1', '--length', '48', '--extractable', '--json']);
    t.match(hmac.json<KeyJson>(), { keyId: 'h1', type: 'hmac', usages: ['mac'], extractable: true, lengthBytes: 48 });

    ecKeyId = ecKey.keyId;

    const table = await alice(['keys', 'ls']);
    t.equal(table.status, 0, 'keys ls');
    t.match(table.out, /^KEY ID\s+TYPE\s+USAGES/, 'a table with a header');
    t.match(table.out, /ed1\s+ed25519\s+sign,verify\s+no\s+\S+\s+0\s+release signing/);
    t.match(table.out, new RegExp(`${ecKeyId}\\s+ec-p256`));
    t.match(table.out, /h1\s+hmac\s+mac\s+yes/);
    const info = await alice(['keys', 'info', 'ed1']);
    t.match(info.out, /key id:\s+ed1\ntype:\s+ed25519\nlabel:\s+release signing/);
    t.equal(info.status, 0);
  });

  await t.test('Ed25519: sign in the VHSM, verify with openssl', async (t) => {
    const pub = await alice(['keys', 'pubkey', 'ed1', '--format', 'pem', '--out', vw.file('ed1.pem')]);
    t.equal(pub.status, 0, `pubkey (${pub.stderr})`);
    t.match(readFileSync(`${vw.dir}/ed1.pem`, 'utf8'), /^-----BEGIN PUBLIC KEY-----\n/);
    const sig = await alice(['sign', 'ed1', '--in', message, '--encoding', 'raw', '--out', vw.file('ed1.sig')]);
    t.equal(sig.status, 0, `sign (${sig.stderr})`);
    t.equal(statSync(`${vw.dir}/ed1.sig`).size, 64, 'a raw 64-byte signature');
    const check = openssl(['pkeyutl', '-verify', '-pubin', '-inkey', `${vw.dir}/ed1.pem`, '-rawin', '-in', message, '-sigfile', `${vw.dir}/ed1.sig`]);
    t.equal(check.status, 0, `openssl verifies it: ${check.out.trim()}`);
  });

  await t.test('ECDSA P-256: sign from stdin, verify with openssl and with vhsm verify', async (t) => {
    const ec = ecKeyId;
    t.equal((await alice(['keys', 'pubkey', ec, '--out', vw.file('ec.pem')])).status, 0, 'pubkey (pem by default)');
    const sig = await vw.vhsm('ct101', ['--password-file', vw.passwordFile('alice'), 'sign', ec, '-e', 'raw'], {
      input: readFileSync(message),
      env: { VHSM_USER: 'alice' },
    });
    t.equal(sig.status, 0, `sign with the data on stdin, the user from $VHSM_USER (${sig.stderr})`);
    vw.file('ec.sig', sig.stdout);
    t.equal(sig.stdout[0], 0x30, 'a DER SEQUENCE');
    const check = openssl(['dgst', '-sha256', '-verify', `${vw.dir}/ec.pem`, '-signature', `${vw.dir}/ec.sig`, message]);
    t.equal(check.status, 0, `openssl verifies it: ${check.out.trim()}`);

    const hexSig = await alice(['sign', ec, '--in', message, '--out', vw.file('ec.sig.hex')]);
    t.match(readFileSync(`${vw.dir}/ec.sig.hex`, 'utf8'), /^30[0-9a-f]+\n$/, 'hex with a newline by default');
    t.equal(hexSig.status, 0);
    const valid = await alice(['verify', ec, '--in', message, '--sig', `${vw.dir}/ec.sig.hex`]);
    t.equal(valid.status, 0, 'verify: exit 0');
    t.equal(valid.out, 'valid\n');
    const tampered = await alice(['verify', ec, '--sig', `${vw.dir}/ec.sig.hex`, '--json'], 'the quick brown fox jumps over the lazy cat\n');
    t.equal(tampered.status, 1, 'other data: exit 1');
    t.match(tampered.json(), { keyId: ec, valid: false });

    const p1363 = await alice(['sign', ec, '--in', message, '--format', 'raw', '--encoding', 'base64', '--json']);
    const sigB64 = p1363.json<{ signature: string; encoding: string }>();
    t.equal(sigB64.encoding, 'base64');
    t.equal(Buffer.from(sigB64.signature, 'base64').length, 64, 'raw r||s is 64 bytes');
    const p1363Valid = cryptoVerify('sha256', readFileSync(message), { key: readFileSync(`${vw.dir}/ec.pem`), dsaEncoding: 'ieee-p1363' }, Buffer.from(sigB64.signature, 'base64'));
    t.ok(p1363Valid, 'node:crypto verifies the r||s signature');
  });

  await t.test('HMAC: mac and verify-mac, checked against the exported key', async (t) => {
    const exported = await alice(['keys', 'export', 'h1', '--format', 'raw', '--encoding', 'raw', '--out', vw.file('h1.key')]);
    t.equal(exported.status, 0, `export an extractable key (${exported.stderr})`);
    t.equal(statSync(`${vw.dir}/h1.key`).mode & 0o777, 0o600, 'key material written 0600');
    const secret = readFileSync(`${vw.dir}/h1.key`);
    t.equal(secret.length, 48);
    const mac = await alice(['mac', 'h1', '--in', message]);
    t.equal(mac.status, 0);
    t.equal(mac.out.trim(), createHmac('sha256', secret).update(readFileSync(message)).digest('hex'), 'the HMAC-SHA256 node:crypto computes');
    vw.file('h1.mac', mac.out);
    t.equal((await alice(['verify-mac', 'h1', '--in', message, '--mac', `${vw.dir}/h1.mac`])).status, 0, 'verify-mac: valid');
    const bad = await alice(['verify-mac', 'h1', '--mac', `${vw.dir}/h1.mac`], 'other data');
    t.equal(bad.status, 1, 'verify-mac over other data: exit 1');
    t.equal(bad.out, 'INVALID\n');
  });

  await t.test('digest: hex input, base64 output, JSON', async (t) => {
    const data = readFileSync(message);
    const b64 = await alice(['digest', '--in-encoding', 'hex', '--encoding', 'base64', '--json'], data.toString('hex'));
    t.same(b64.json(), { algorithm: 'sha256', digest: createHash('sha256').update(data).digest('base64'), encoding: 'base64' }, 'one JSON object');
  });

  await t.test('keys import: an openssl key, signed by openssl, verified by vhsm', async (t) => {
    const pem = vw.file('imported.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', pem]);
    const imported = await alice(['keys', 'import', '--type', 'ed25519', '--format', 'pkcs8-der', '--id', 'byok', '--in', pem, '--json']);
    t.equal(imported.status, 0, `import PEM as pkcs8-der (${imported.stderr})`);
    t.match(imported.json(), { keyId: 'byok', type: 'ed25519' });
    execFileSync('openssl', ['pkeyutl', '-sign', '-inkey', pem, '-rawin', '-in', message, '-out', `${vw.dir}/byok.sig`]);
    const check = await alice(['verify', 'byok', '--in', message, '--sig', `${vw.dir}/byok.sig`, '--encoding', 'raw']);
    t.equal(check.status, 0, `vhsm verify accepts the openssl signature (${check.stderr})`);
    const der = await alice(['keys', 'pubkey', 'byok', '--format', 'der', '--encoding', 'raw']);
    const fromOpenssl = execFileSync('openssl', ['pkey', '-in', pem, '-pubout', '-outform', 'DER']);
    t.same(der.stdout, fromOpenssl, 'the same SPKI DER as openssl derives from the private key');
  });

  await t.test('keys delete, then the key is gone', async (t) => {
    const deleted = await alice(['keys', 'delete', 'byok', '--json']);
    t.same(deleted.json(), { deleted: 'byok' });
    const list = await alice(['keys', 'list', '--json']);
    t.notOk(list.json<{ keys: KeyJson[] }>().keys.some((k) => k.keyId === 'byok'), 'not listed');
    const used = list.json<{ keys: KeyJson[] }>().keys.find((k) => k.keyId === 'ed1');
    t.equal(used?.useCount, 1, 'use counters count the CLI signature');
  });
});
