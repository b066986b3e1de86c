/**
 * libvhsm-pkcs11.so (the shipped build: the kernel transport only) driven by
 * OpenSC's pkcs11-tool, unchanged, from a client container through the
 * module to vhsm-server: slots and objects before and after login, key pair
 * generation of each type, every signature mechanism verified by openssl
 * with the exported public key, threads and fork, a wrong PIN, a container
 * the user is not allowed in, a full C session (ECDH, AES-GCM, streams,
 * certificates, C_SetPIN), no server, and no kernel module. Every command
 * runs under a timeout.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, VhsmWorld, type CliRun } from './lib/vhsm-world.js';

const ALICE = { name: 'alice', password: 'correct horse battery staple', ctids: [101] };
const module = join(process.cwd(), 'build', 'pkcs11', 'libvhsm-pkcs11.so');
const hex = (s: string): string => Buffer.from(s).toString('hex');
const started = Date.now();

const vw = await VhsmWorld.create({ clients: { app1: 101, app2: 102 }, users: [ALICE] });
let destroyed = false;
t.teardown(async () => {
  if (!destroyed) await vw.destroy();
  t.comment(`pkcs11-tool VM test: ${((Date.now() - started) / 1000).toFixed(0)} s`);
});
const conf = vw.file('pkcs11.conf', 'slot alice\n');
const env = { VHSM_PKCS11_CONF: conf };
const tool = (ns: string | null, args: string[], timeoutMs = 120_000): Promise<CliRun> =>
  run(ns, ['pkcs11-tool', '--module', module, ...args], { env, timeoutMs });
const alice = (args: string[], timeoutMs?: number) => tool('app1', ['--slot', '0', '--login', '--pin', ALICE.password, ...args], timeoutMs);
const message = vw.file('msg.txt', 'pay 100 EUR to Bob, ref 2026-12-03\n');
const file = (name: string) => join(vw.dir, name);
const openssl = (args: string[]) => run(null, ['openssl', ...args], { timeoutMs: 60_000 });

async function verified(t: Test, what: string, args: string[]): Promise<void> {
  const r = await openssl(args);
  t.equal(r.status, 0, `${what}: openssl verifies it with the exported public key ${r.out}${r.stderr}`);
}

t.test('before login: slots, token, mechanisms, no objects', async (t) => {
  const slots = await tool('app1', ['-L']);
  t.equal(slots.status, 0, slots.stderr);
  t.match(slots.out, /token label\s+: alice/, 'token label = user name');
  t.match(slots.out, /login required.*token initialized, PIN initialized/);
  const mechs = await tool('app1', ['--slot', '0', '-M']);
  for (const m of ['ECDSA-KEY-PAIR-GEN', 'EC-EDWARDS-KEY-PAIR-GEN', 'RSA-PKCS-KEY-PAIR-GEN', 'ECDSA-SHA256', 'EDDSA', 'SHA256-RSA-PKCS-PSS', 'ECDH1-DERIVE', 'AES-GCM'])
    t.ok(mechs.out.includes(m), `${m} advertised`);
  const objects = await tool('app1', ['--slot', '0', '-O']);
  t.equal(objects.status, 0);
  t.notMatch(objects.out, /Object;/, 'no objects yet');
});

const keys = [
  { id: 'ec1', type: 'EC:prime256v1' },
  { id: 'ed1', type: 'EC:edwards25519' },
  { id: 'rsa1', type: 'rsa:2048' },
];

t.test('key pair generation of each type; public keys readable without login', async (t) => {
  for (const k of keys) {
    const r = await alice(['--keypairgen', '--key-type', k.type, '--id', hex(k.id), '--label', k.id], 300_000);
    t.equal(r.status, 0, `${k.type}: generated ${r.stderr}`);
    const pub = await tool('app1', ['--slot', '0', '--read-object', '--type', 'pubkey', '--id', hex(k.id), '-o', file(`${k.id}.pub`)]);
    t.equal(pub.status, 0, `${k.type}: public key exported without login ${pub.stderr}`);
    const pem = await openssl(['pkey', '-pubin', '-in', file(`${k.id}.pub`), '-out', file(`${k.id}.pem`)]);
    t.equal(pem.status, 0, `${k.type}: a valid SPKI ${pem.stderr}`);
  }
  const before = await tool('app1', ['--slot', '0', '-O']);
  t.equal((before.out.match(/Public Key Object/g) ?? []).length, 3, 'three public keys listed before login');
  t.notMatch(before.out, /Private Key Object/, 'no private key before login');
  const after = await alice(['-O']);
  t.equal((after.out.match(/Private Key Object/g) ?? []).length, 3, 'three private keys after login');
});

t.test('every signature mechanism, verified by openssl', async (t) => {
  const sign = async (mech: string, id: string, input: string, extra: string[] = []): Promise<string> => {
    const out = file(`sig-${mech}-${id}`);
    const r = await alice(['--sign', '--mechanism', mech, '--id', hex(id), '-i', input, '-o', out, ...extra]);
    t.equal(r.status, 0, `${mech}: signed ${r.stderr}`);
    return out;
  };
  for (const [mech, md] of [['ECDSA-SHA256', 'sha256'], ['ECDSA-SHA384', 'sha384'], ['ECDSA-SHA512', 'sha512']] as const) {
    const sig = await sign(mech, 'ec1', message, ['--signature-format', 'openssl']);
    await verified(t, mech, ['dgst', `-${md}`, '-verify', file('ec1.pem'), '-signature', sig, message]);
  }
  const sha1 = file('msg.sha1');
  writeFileSync(sha1, (await openssl(['dgst', '-sha1', '-binary', message])).stdout);
  const ecdsa = await sign('ECDSA', 'ec1', sha1, ['--signature-format', 'openssl']);
  await verified(t, 'ECDSA over a 20-byte digest', ['pkeyutl', '-verify', '-pubin', '-inkey', file('ec1.pem'), '-in', sha1, '-sigfile', ecdsa]);
  const ed = await sign('EDDSA', 'ed1', message);
  await verified(t, 'EDDSA', ['pkeyutl', '-verify', '-pubin', '-inkey', file('ed1.pem'), '-rawin', '-in', message, '-sigfile', ed]);
  for (const [mech, md] of [['SHA256-RSA-PKCS', 'sha256'], ['SHA512-RSA-PKCS', 'sha512']] as const) {
    const sig = await sign(mech, 'rsa1', message);
    await verified(t, mech, ['dgst', `-${md}`, '-verify', file('rsa1.pem'), '-signature', sig, message]);
  }
  const pss = await sign('SHA384-RSA-PKCS-PSS', 'rsa1', message);
  await verified(t, 'SHA384-RSA-PKCS-PSS', ['dgst', '-sha384', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:48', '-verify', file('rsa1.pem'), '-signature', pss, message]);
  const sha256 = file('msg.sha256');
  const digest = (await openssl(['dgst', '-sha256', '-binary', message])).stdout;
  writeFileSync(sha256, digest);
  const rawPss = await sign('RSA-PKCS-PSS', 'rsa1', sha256, ['--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256', '--salt-len', '32']);
  await verified(t, 'RSA-PKCS-PSS (prehashed)', ['dgst', '-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32', '-verify', file('rsa1.pem'), '-signature', rawPss, message]);
  const info = file('msg.digestinfo');
  writeFileSync(info, Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), digest]));
  const raw = await sign('RSA-PKCS', 'rsa1', info);
  await verified(t, 'RSA-PKCS over a DigestInfo (as OpenSSH signs)', ['dgst', '-sha256', '-verify', file('rsa1.pem'), '-signature', raw, message]);
});

t.test('threads and fork through the kernel', async (t) => {
  const threads = await tool('app1', ['--test-threads', 'ILGISLT0', '--test-threads', 'ILGISLT0', '--test-threads', 'ILGISLT0', '-L'], 300_000);
  t.equal(threads.status, 0, `--test-threads ${threads.stderr}`);
  const fork = await tool('app1', ['--slot', '0', '--test-fork'], 300_000);
  t.equal(fork.status, 0, `--test-fork ${fork.stderr}`);
});

t.test('a full C session over the kernel (ECDH, AES-GCM, streams, certificates, C_SetPIN)', async (t) => {
  const r = await run('app1', [join(process.cwd(), 'build', 'pkcs11', 'session-test'), module, ALICE.password, 'a new passphrase 123'], { env, timeoutMs: 600_000 });
  const lines = r.out.split('\n').filter((l) => /^(not )?ok /.test(l));
  t.ok(lines.length > 40, `${lines.length} checks ran`);
  for (const line of lines) t.ok(line.startsWith('ok'), line.replace(/^(not )?ok \d+ - /, ''));
  t.equal(r.status, 0, r.stderr);
});

t.test('wrong PIN; a container the user is not allowed in', async (t) => {
  const wrong = await tool('app1', ['--slot', '0', '--login', '--pin', 'not the password', '-O']);
  t.not(wrong.status, 0);
  t.match(wrong.stderr, /CKR_PIN_INCORRECT/, 'wrong PIN: CKR_PIN_INCORRECT');
  const elsewhere = await tool('app2', ['--slot', '0', '-O']);
  t.notMatch(elsewhere.out, /Object;/, 'from app2: no public objects of alice');
  const login = await tool('app2', ['--slot', '0', '--login', '--pin', ALICE.password, '-O']);
  t.not(login.status, 0);
  t.match(login.stderr, /CKR_FUNCTION_REJECTED|\(0x200\)/, 'right PIN from app2: CKR_FUNCTION_REJECTED');
});

t.test('no server: tokens absent, clean errors, no hang', async (t) => {
  await vw.stopServer();
  const began = Date.now();
  const slots = await tool('app1', ['-L'], 60_000);
  t.equal(slots.status, 0, 'C_Initialize still succeeds');
  t.match(slots.out, /\(empty\)/, 'the slot shows no token');
  const login = await tool('app1', ['--slot', '0', '--login', '--pin', ALICE.password, '-O'], 60_000);
  t.not(login.status, 0, 'login fails');
  t.ok(Date.now() - began < 30_000, `answered at once (${Date.now() - began} ms)`);
});

t.test('no kernel module: C_Initialize succeeds, no token', async (t) => {
  await vw.destroy(); // unloads vhsm_transport.ko and removes the world's files
  destroyed = true;
  const dir = mkdtempSync('/tmp/vhsm-p11-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const own = join(dir, 'pkcs11.conf');
  writeFileSync(own, 'slot alice\n');
  const slots = await run(null, ['pkcs11-tool', '--module', module, '-L'], { env: { VHSM_PKCS11_CONF: own }, timeoutMs: 60_000 });
  t.equal(slots.status, 0, slots.stderr);
  t.match(slots.out, /\(empty\)/, 'the slot shows no token');
});
