/**
 * The PKCS#11 module's test build against the real server code (host
 * harness, fixed stamp): pkcs11-tool (OpenSC, unchanged) lists, logs in,
 * generates every key type and signs with every signature mechanism, and
 * openssl verifies each signature with the exported public key; threads,
 * fork, a wrong PIN, no server; then a full session under valgrind.
 * The same module over the kernel is test/vm/pkcs11-tool.test.ts.
 */
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALICE, BOB } from './helpers/fixture.js';
import { startP11Harness } from './helpers/p11-harness.js';
import { p11Build, p11TestModule, run } from './helpers/p11.js';

const bob = { ...BOB, ctids: [101] };
const carol = { name: 'carol', password: 'carol is elsewhere', ctids: [102] };
const harness = await startP11Harness([ALICE, bob, carol]);
t.teardown(() => harness.close());
const dir = harness.fixture.dir;
const conf = join(dir, 'pkcs11.conf');
writeFileSync(conf, `slot ${ALICE.name}\nslot ${bob.name} hide-types=ed25519\nslot ${carol.name}\n`);
const env = harness.env(conf);
const hex = (s: string): string => Buffer.from(s).toString('hex');
const tool = (args: string[], timeoutMs = 60_000) => run(['pkcs11-tool', '--module', p11TestModule, ...args], { env, timeoutMs });
const asAlice = (args: string[]) => tool(['--slot', '0', '--login', '--pin', ALICE.password, ...args]);
const message = join(dir, 'msg.txt');
writeFileSync(message, 'pay 100 EUR to Bob, ref 2026-12-03\n');

t.test('slots, tokens and mechanisms', async (t) => {
  const slots = await tool(['-L']);
  t.equal(slots.status, 0, slots.stderr);
  t.match(slots.stdout, /token label\s+: alice/);
  t.match(slots.stdout, /token label\s+: bob/);
  t.match(slots.stdout, /login required.*token initialized, PIN initialized/);
  const mechs = await tool(['--slot', '0', '-M']);
  for (const m of ['ECDSA-KEY-PAIR-GEN', 'EC-EDWARDS-KEY-PAIR-GEN', 'RSA-PKCS-KEY-PAIR-GEN', 'ECDSA,', 'ECDSA-SHA256', 'EDDSA', 'RSA-PKCS,', 'SHA256-RSA-PKCS-PSS', 'RSA-PKCS-OAEP', 'SHA256-HMAC', 'ECDH1-DERIVE', 'AES-GCM'])
    t.ok(mechs.stdout.includes(m), `mechanism ${m} advertised`);
});

const keys = [
  { id: 'ec1', type: 'EC:prime256v1' },
  { id: 'ec384', type: 'EC:secp384r1' },
  { id: 'ed1', type: 'EC:edwards25519' },
  { id: 'rsa1', type: 'rsa:2048' },
];

/** pkcs11-tool 0.23 cannot export P-384 public keys ("cannot create EVP_PKEY", also with SoftHSM):
 *  build the SPKI from the CKA_EC_POINT it lists instead. */
async function p384Spki(id: string): Promise<Buffer> {
  const listed = await tool(['--slot', '0', '-O', '--type', 'pubkey', '--id', hex(id)]);
  // -O lists every public key (--id does not filter it): take the block with this CKA_ID.
  const block = listed.stdout.split('Public Key Object').find((b) => new RegExp(`ID:\\s+${hex(id)}\\b`).test(b))!;
  const point = /EC_POINT:\s+([0-9a-f]+)/.exec(block)![1]!;
  const raw = Buffer.from(point, 'hex').subarray(2); // the OCTET STRING's content: 04||X||Y
  return Buffer.concat([Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex'), raw]);
}

t.test('key pair generation of each type', async (t) => {
  for (const k of keys) {
    const r = await asAlice(['--keypairgen', '--key-type', k.type, '--id', hex(k.id), '--label', k.id]);
    t.equal(r.status, 0, `${k.type}: generated ${r.stderr}`);
    if (k.id === 'ec384') {
      writeFileSync(join(dir, `${k.id}.pub`), await p384Spki(k.id));
    } else {
      const pub = await tool(['--slot', '0', '--read-object', '--type', 'pubkey', '--id', hex(k.id), '-o', join(dir, `${k.id}.pub`)]);
      t.equal(pub.status, 0, `${k.type}: public key read without login ${pub.stderr}`);
    }
    const pem = await run(['openssl', 'pkey', '-pubin', '-in', join(dir, `${k.id}.pub`), '-out', join(dir, `${k.id}.pem`)]);
    t.equal(pem.status, 0, `${k.type}: openssl reads it ${pem.stderr}`);
  }
});

t.test('objects before and after login', async (t) => {
  const before = await tool(['--slot', '0', '-O']);
  t.equal(before.status, 0);
  t.equal((before.stdout.match(/Public Key Object/g) ?? []).length, 4, 'four public keys without login');
  t.notMatch(before.stdout, /Private Key Object/, 'no private key without login');
  const after = await asAlice(['-O']);
  t.equal((after.stdout.match(/Private Key Object/g) ?? []).length, 4, 'four private keys after login');
  const onBob = await tool(['--slot', '1', '--login', '--pin', bob.password, '-O']);
  t.equal(onBob.status, 0, 'bob logs in on his slot');
  t.notMatch(onBob.stdout, /ec1/, "alice's keys are not on bob's token");
  const bobEd = await tool(['--slot', '1', '--login', '--pin', bob.password, '--keypairgen', '--key-type', 'EC:edwards25519', '--id', hex('bob-ed')]);
  t.equal(bobEd.status, 0, 'bob generates an Ed25519 key');
  const hidden = await tool(['--slot', '1', '-O']);
  t.notMatch(hidden.stdout, /EC_EDWARDS/, 'hide-types=ed25519: his slot does not show it');
  const carolLogin = await tool(['--slot', '2', '--login', '--pin', carol.password, '-O']);
  t.match(carolLogin.stderr, /CKR_FUNCTION_REJECTED|\(0x200\)/, 'a user not allowed in this container: CKR_FUNCTION_REJECTED');
});

async function verify(t: Test, what: string, argv: string[]): Promise<void> {
  const r = await run(argv);
  t.equal(r.status, 0, `${what}: openssl verifies ${r.stdout}${r.stderr}`);
}

t.test('every signature mechanism, verified by openssl', async (t) => {
  const sign = async (mech: string, id: string, input: string, extra: string[] = []): Promise<string> => {
    const out = join(dir, `sig-${mech}-${id}`);
    const r = await asAlice(['--sign', '--mechanism', mech, '--id', hex(id), '-i', input, '-o', out, ...extra]);
    t.equal(r.status, 0, `${mech} with ${id}: signed ${r.stderr}`);
    return out;
  };
  for (const [mech, md] of [['ECDSA-SHA256', 'sha256'], ['ECDSA-SHA384', 'sha384'], ['ECDSA-SHA512', 'sha512']] as const) {
    for (const id of ['ec1', 'ec384']) {
      const sig = await sign(mech, id, message, ['--signature-format', 'openssl']);
      await verify(t, `${mech} ${id}`, ['openssl', 'dgst', `-${md}`, '-verify', join(dir, `${id}.pem`), '-signature', sig, message]);
    }
  }
  // CKM_ECDSA over a digest the caller made (SHA-1 sized, as pam_p11 does, and SHA-256).
  for (const md of ['sha1', 'sha256']) {
    const digest = join(dir, `msg.${md}`);
    writeFileSync(digest, (await run(['openssl', 'dgst', `-${md}`, '-binary', message])).out);
    const sig = await sign('ECDSA', 'ec1', digest, ['--signature-format', 'openssl']);
    await verify(t, `ECDSA over ${md}`, ['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', join(dir, 'ec1.pem'), '-in', digest, '-sigfile', sig]);
  }
  const ed = await sign('EDDSA', 'ed1', message);
  await verify(t, 'EDDSA', ['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', join(dir, 'ed1.pem'), '-rawin', '-in', message, '-sigfile', ed]);
  for (const [mech, md] of [['SHA256-RSA-PKCS', 'sha256'], ['SHA384-RSA-PKCS', 'sha384'], ['SHA512-RSA-PKCS', 'sha512']] as const) {
    const sig = await sign(mech, 'rsa1', message);
    await verify(t, mech, ['openssl', 'dgst', `-${md}`, '-verify', join(dir, 'rsa1.pem'), '-signature', sig, message]);
  }
  for (const [mech, md, salt] of [['SHA256-RSA-PKCS-PSS', 'sha256', 32], ['SHA384-RSA-PKCS-PSS', 'sha384', 48], ['SHA512-RSA-PKCS-PSS', 'sha512', 64]] as const) {
    const sig = await sign(mech, 'rsa1', message);
    await verify(t, mech, ['openssl', 'dgst', `-${md}`, '-sigopt', 'rsa_padding_mode:pss', '-sigopt', `rsa_pss_saltlen:${salt}`, '-verify', join(dir, 'rsa1.pem'), '-signature', sig, message]);
  }
  const digest = join(dir, 'msg.sha256');
  const pss = await sign('RSA-PKCS-PSS', 'rsa1', digest, ['--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256', '--salt-len', '32']);
  await verify(t, 'RSA-PKCS-PSS (prehashed)', ['openssl', 'dgst', '-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32', '-verify', join(dir, 'rsa1.pem'), '-signature', pss, message]);
  const badSalt = await asAlice(['--sign', '--mechanism', 'RSA-PKCS-PSS', '--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256', '--salt-len', '20', '--id', hex('rsa1'), '-i', digest, '-o', join(dir, 'x')]);
  t.match(badSalt.stderr, /CKR_MECHANISM_PARAM_INVALID/, 'PSS with salt != hash length: CKR_MECHANISM_PARAM_INVALID');
  // CKM_RSA_PKCS over a DigestInfo, as OpenSSH does for rsa-sha2-256.
  const info = join(dir, 'msg.digestinfo');
  writeFileSync(info, Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), (await run(['openssl', 'dgst', '-sha256', '-binary', message])).out]));
  const raw = await sign('RSA-PKCS', 'rsa1', info);
  await verify(t, 'RSA-PKCS over a DigestInfo', ['openssl', 'dgst', '-sha256', '-verify', join(dir, 'rsa1.pem'), '-signature', raw, message]);
});

t.test('threads and fork', async (t) => {
  const threads = await tool(['--test-threads', 'ILGISLT0', '--test-threads', 'ILGISLT0', '--test-threads', 'ILGISLT0', '-L'], 120_000);
  t.equal(threads.status, 0, `--test-threads ${threads.stderr}`);
  const fork = await tool(['--slot', '0', '--test-fork'], 120_000);
  t.equal(fork.status, 0, `--test-fork ${fork.stderr}`);
  t.match(fork.stdout, /C_Initialize in forked child/);
});

t.test('wrong PIN, and no server', async (t) => {
  const wrong = await tool(['--slot', '0', '--login', '--pin', 'not the password', '-O']);
  t.not(wrong.status, 0);
  t.match(wrong.stderr, /CKR_PIN_INCORRECT/, 'wrong PIN: CKR_PIN_INCORRECT');
});

t.test('a full session under valgrind: no leak, no invalid access', async (t) => {
  const r = await run(['valgrind', '-q', '--leak-check=full', '--show-leak-kinds=definite,indirect,possible',
    '--errors-for-leak-kinds=definite,indirect,possible', '--error-exitcode=99',
    join(p11Build, 'session-test'), p11TestModule, ALICE.password, 'a new passphrase 123'], { env, timeoutMs: 300_000 });
  const lines = r.stdout.split('\n').filter((l) => /^(not )?ok /.test(l));
  t.ok(lines.length > 40, `${lines.length} checks ran`);
  for (const line of lines) t.ok(line.startsWith('ok'), line.replace(/^(not )?ok \d+ - /, ''));
  t.equal(r.status, 0, `valgrind clean ${r.stderr}`);
});

t.test('no server: tokens absent, a clean error, no hang', async (t) => {
  await harness.stopServer();
  const started = Date.now();
  const slots = await tool(['-L'], 30_000);
  t.equal(slots.status, 0, 'C_Initialize still succeeds');
  t.match(slots.stdout, /Slot 0.*\n\s+\(empty\)/, 'slot 0 shows no token');
  const login = await tool(['--slot', '0', '--login', '--pin', ALICE.password, '-O'], 30_000);
  t.not(login.status, 0);
  t.match(login.stderr + login.stdout, /CKR_TOKEN_NOT_PRESENT|No slot with a token|not present/i, 'a clean error');
  t.ok(Date.now() - started < 20_000, 'answered at once');
});
