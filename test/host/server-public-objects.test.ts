/**
 * Public objects before login (list_public_objects) and certificates
 * (create_certificate, delete_certificate): what an allowed container sees
 * without a password, that an unknown user and a container outside the set
 * are indistinguishable, paging within the 32 KiB reply, certificate
 * validation and limits, and key pairs of a schema-2 DB (before public keys) getting their public
 * keys at the owner's next login.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { VhsmSession } from '../../client/index.js';
import { MAX_PAYLOAD_BYTES, v1 } from '../../proto/index.js';
import { CERTIFICATE_FRAMING_BYTES, MAX_CERTIFICATE_LIST_BYTES, listedBytes } from '../../server/certstore.js';
import { openAdminStore } from '../../server/admin-store.js';
import { ALICE, BOB, startFixture, testBackend, type Fixture } from './helpers/fixture.js';
import { expectCode } from './helpers/expect.js';
import { auditRows, call, rawLogin, selectAll, snapshot } from './helpers/raw.js';
import { certificateOfSize, makeCertificate, pem, tlv } from './helpers/x509.js';

async function aliceWithKeys(fixture: Fixture): Promise<VhsmSession> {
  const session = await (await fixture.client({ pid: 1 })).login(ALICE.name, ALICE.password);
  for (const [keyId, type] of [
    ['a-ec', 'ec-p256'],
    ['b-ed', 'ed25519'],
    ['c-k1', 'ec-secp256k1'],
    ['d-mac', 'hmac'],
    ['e-aes', 'aes-256'],
    ['f-x', 'x25519'],
    ['g-secret', 'secret'],
  ] as const) {
    await session.generateKey({ type, keyId, label: `label of ${keyId}` });
  }
  return session;
}

const certCount = async (dbPath: string): Promise<number> => Number((await selectAll(dbPath, 'SELECT count(*) AS n FROM certificates'))[0]!.n);

t.test('without a session, an allowed container sees the key pairs and certificates, never secret keys', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await aliceWithKeys(fixture);
  await session.sign('a-ec', Buffer.from('used once'));
  const der = makeCertificate({ commonName: 'alice web' });
  const cert = await session.createCertificate({ der, id: Buffer.from('a-ec'), label: 'web' });
  t.match(cert.certId, /^[0-9a-f]{32}$/, 'server-chosen cert id');

  // Another process of the same container, which never logs in.
  const stranger = await fixture.client({ pid: 2 });
  const page = await stranger.listPublicObjects(ALICE.name);
  t.same(
    page.keys.map((object) => object.key.keyId),
    ['a-ec', 'b-ed', 'c-k1', 'f-x'],
    'the key pairs, in key id order; no hmac, aes-256 or secret key',
  );
  t.equal(page.nextAfterKeyId, '', 'one page');
  for (const object of page.keys) {
    t.same(Buffer.from(object.spki), Buffer.from(await session.publicKey(object.key.keyId)), `${object.key.keyId}: the SPKI of the key`);
    t.equal(object.key.label, `label of ${object.key.keyId}`, `${object.key.keyId}: its label`);
    t.equal(object.key.useCount, 0, `${object.key.keyId}: no use counter`);
    t.equal(object.key.lastUsedAt, null, `${object.key.keyId}: no last use`);
  }
  t.same(page.keys.find((o) => o.key.keyId === 'a-ec')!.key.usages, ['sign', 'verify'], 'usages shown (CKA_VERIFY etc.)');
  t.equal(page.certificates.length, 1, 'the certificate');
  t.same(
    { ...page.certificates[0]!, id: Buffer.from(page.certificates[0]!.id), der: Buffer.from(page.certificates[0]!.der) },
    { ...cert, id: Buffer.from('a-ec'), der },
    'exactly as stored',
  );
  t.same(await stranger.publicObjects(ALICE.name), { keys: page.keys, certificates: page.certificates }, 'publicObjects follows the same pages');

  const second = await stranger.listPublicObjects(ALICE.name, { afterKeyId: 'b-ed' });
  t.same(second.keys.map((o) => o.key.keyId), ['c-k1', 'f-x'], 'a later page');
  t.same(second.certificates, [], 'certificates come on the first page only');

  const rows = (await auditRows(fixture.dbPath)).filter((row) => row.op === 'listPublicObjects');
  t.equal(rows.length, 3, 'each listing audited');
  t.ok(rows.every((row) => row.user === 'alice' && row.ctid === 101 && row.pid === 2 && row.result === 'OK'), 'with user, container, pid and result');
  const created = (await auditRows(fixture.dbPath)).find((row) => row.op === 'createCertificate')!;
  t.same([created.user, created.key_id, created.result], ['alice', cert.certId, 'OK'], 'creation audited with the cert id');
});

t.test('unknown user and a container outside the set: the same NOT_ALLOWED, no KDF, nothing recorded', async (t) => {
  // With the real PBKDF2 cost on the unknown-user path: a listing that paid it would take 100s of ms.
  const fixture = await startFixture({ pbkdf2Iterations: 600_000 });
  t.teardown(() => fixture.close());
  const before = (await snapshot(fixture.dbPath));
  const fromBob = await fixture.connect({ ctid: 102 });
  const fromAlice = await fixture.connect({ ctid: 101 });
  const notAllowed = await call(fromBob, { listPublicObjects: { username: ALICE.name } });
  const unknown = await call(fromAlice, { listPublicObjects: { username: 'mallory' } });
  t.equal(notAllowed.error, 'NOT_ALLOWED', 'alice from bob’s container');
  t.equal(unknown.error, 'NOT_ALLOWED', 'an unknown user');
  t.equal(unknown.message, notAllowed.message, 'the same message');
  t.same(unknown.response.error?.retryAfterMs ?? 0, notAllowed.response.error?.retryAfterMs ?? 0, 'the same everything');
  t.equal((await call(fromAlice, { listPublicObjects: { username: 'no/such' } })).error, 'INVALID_ARGUMENT', 'an impossible name is a syntax error');

  const bobSession = await rawLogin(fromBob, BOB.name, BOB.password);
  t.equal((await call(fromBob, { session: bobSession, listPublicObjects: { username: ALICE.name } })).error, 'NOT_ALLOWED', 'a session of another user grants nothing');

  const median = async (username: string, transport: typeof fromAlice): Promise<number> => {
    const times: number[] = [];
    for (let i = 0; i < 15; i++) {
      const started = performance.now();
      const reply = await call(transport, { listPublicObjects: { username } });
      times.push(performance.now() - started);
      if (reply.error !== 'NOT_ALLOWED') t.fail(`expected NOT_ALLOWED, got ${reply.error}`);
    }
    return times.sort((a, b) => a - b)[7]!;
  };
  const [unknownMs, notAllowedMs] = [await median('mallory', fromAlice), await median(ALICE.name, fromBob)];
  t.ok(unknownMs < 50 && notAllowedMs < 50, `no key derivation either way (medians ${unknownMs.toFixed(2)} and ${notAllowedMs.toFixed(2)} ms)`);

  const rows = (await auditRows(fixture.dbPath)).filter((row) => row.op === 'listPublicObjects');
  t.ok(rows.some((row) => row.user === 'mallory' && row.result === 'NOT_ALLOWED'), 'the unknown name audited');
  t.ok(rows.some((row) => row.user === 'alice' && row.ctid === 102 && row.result === 'NOT_ALLOWED'), 'the refused container audited');
  t.equal((await snapshot(fixture.dbPath)).replace(/"login_failures":\[\]/, ''), before.replace(/"login_failures":\[\]/, ''), 'nothing changed');
  t.match((await snapshot(fixture.dbPath)), /"login_failures":\[\]/, 'no login failure recorded');
});

t.test('paging: limit, cursor, and replies within 32 KiB with the largest keys and a full certificate budget', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  // RSA-4096 SPKIs (550 bytes) with the longest ids and labels: the largest key objects there are.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 4096 }).privateKey.export({ format: 'der', type: 'pkcs8' });
  const ids = Array.from({ length: 90 }, (_, i) => `${String(i).padStart(2, '0')}${'k'.repeat(62)}`);
  await Promise.all(ids.map((keyId) => session.importKey({ type: 'rsa-4096', keyId, label: 'é'.repeat(64), format: 'pkcs8-der', keyData: rsa })));
  const lister = await fixture.client({ pid: 7 });

  const small = await lister.listPublicObjects(ALICE.name, { limit: 3 });
  t.same(small.keys.map((o) => o.key.keyId), ids.slice(0, 3), 'limit 3');
  t.equal(small.nextAfterKeyId, ids[2], 'the cursor is the last key of the page');

  // The in-memory hub refuses replies over 32 KiB as the kernel does: every page that arrives fit.
  t.equal(fixture.hub.maxPayloadBytes, MAX_PAYLOAD_BYTES, 'the transport enforces the kernel limit on replies');
  const walk = async (): Promise<{ pages: number; keys: string[]; firstPage: number }> => {
    const keys: string[] = [];
    let pages = 0;
    let firstPage = 0;
    let after = '';
    do {
      const page = await lister.listPublicObjects(ALICE.name, { afterKeyId: after, limit: 100 });
      if (pages === 0) firstPage = page.keys.length;
      keys.push(...page.keys.map((o) => o.key.keyId));
      after = page.nextAfterKeyId;
      pages += 1;
    } while (after !== '');
    return { pages, keys, firstPage };
  };
  const plain = await walk();
  t.same(plain.keys, ids, 'every key pair once, in order');
  t.ok(plain.pages >= 3, `pages cut by size, not only by limit (${plain.pages} pages of up to 100)`);
  t.ok(plain.firstPage >= 35, `pages are filled (${plain.firstPage} keys of ~840 bytes on the first)`);

  // Certificates up to the budget: they all go on the first page, and a key still fits there.
  const certs: number[] = [];
  for (;;) {
    const der = certificateOfSize(4000, `c${certs.length}`);
    try {
      await session.createCertificate({ der, id: randomBytes(64), label: 'l'.repeat(128) });
      certs.push(der.length);
    } catch (error) {
      t.equal((error as { code?: string }).code, 'RESOURCE_EXHAUSTED', `certificate ${certs.length + 1} is over the budget`);
      break;
    }
  }
  t.equal(certs.length, Math.floor(MAX_CERTIFICATE_LIST_BYTES / listedBytes(64, 128, 4000)), 'as many as the budget holds');
  const full = await walk();
  t.same(full.keys, ids, 'still every key pair once');
  t.ok(full.firstPage >= 1, `the first page holds every certificate and ${full.firstPage} key(s)`);
  const first = await lister.listPublicObjects(ALICE.name);
  t.equal(first.certificates.length, certs.length, 'all certificates on the first page');
});

t.test('the certificate framing bound holds for the largest fields', async (t) => {
  const largest = { certId: 'f'.repeat(32), id: Buffer.alloc(64, 1), label: 'é'.repeat(64), der: Buffer.alloc(16 * 1024, 2), createdMs: 2 ** 53 - 1 };
  const inList = v1.PublicObjectList.encode({ certificates: [largest] }).finish().length;
  t.ok(inList <= listedBytes(64, 128, 16 * 1024), `${inList} bytes in the list ≤ the bound`);
  t.ok(inList - 64 - 128 - 16 * 1024 <= CERTIFICATE_FRAMING_BYTES, 'framing within CERTIFICATE_FRAMING_BYTES');
});

t.test('certificates: validation, limits, deletion, per user, deleted with the user', async (t) => {
  const fixture = await startFixture({ limits: { maxCertificatesPerUser: 3 } });
  t.teardown(() => fixture.close());
  const client = await fixture.client();
  const alice = await client.login(ALICE.name, ALICE.password);
  const der = makeCertificate();
  const before = (await snapshot(fixture.dbPath));
  const refusals: [string, Promise<unknown>, string][] = [
    ['empty DER', alice.createCertificate({ der: new Uint8Array(0) }), 'INVALID_ARGUMENT'],
    ['garbage', alice.createCertificate({ der: randomBytes(300) }), 'INVALID_ARGUMENT'],
    ['a PEM certificate', alice.createCertificate({ der: Buffer.from(pem(der)) }), 'INVALID_ARGUMENT'],
    ['a trailing byte', alice.createCertificate({ der: Buffer.concat([der, Buffer.of(0)]) }), 'INVALID_ARGUMENT'],
    ['two certificates', alice.createCertificate({ der: Buffer.concat([der, der]) }), 'INVALID_ARGUMENT'],
    ['truncated', alice.createCertificate({ der: der.subarray(0, der.length - 1) }), 'INVALID_ARGUMENT'],
    ['a SEQUENCE that is no certificate', alice.createCertificate({ der: tlv(0x30, tlv(0x02, Buffer.of(1))) }), 'INVALID_ARGUMENT'],
    ['16 KiB + 1', alice.createCertificate({ der: certificateOfSize(16 * 1024 + 1) }), 'INVALID_ARGUMENT'],
    ['a 65-byte CKA_ID', alice.createCertificate({ der, id: randomBytes(65) }), 'INVALID_ARGUMENT'],
    ['a label with a newline', alice.createCertificate({ der, label: 'a\nb' }), 'INVALID_ARGUMENT'],
    ['a 129-byte label', alice.createCertificate({ der, label: 'x'.repeat(129) }), 'INVALID_ARGUMENT'],
  ];
  // Handled now: they may fail before expectCode gets to them (replies wait for a database round trip).
  for (const [, promise] of refusals) promise.catch(() => undefined);
  for (const [what, promise, code] of refusals) await expectCode(t, promise, code, what);
  t.equal((await snapshot(fixture.dbPath)), before, 'nothing stored by any of them');

  const big = await alice.createCertificate({ der: certificateOfSize(16 * 1024), id: new Uint8Array(0), label: '' });
  t.equal(big.der.length, 16 * 1024, 'exactly 16 KiB is fine');
  const second = await alice.createCertificate({ der, id: randomBytes(64), label: 'é'.repeat(64) });
  await alice.createCertificate({ der }); // the same certificate twice is allowed, as in PKCS#11
  await expectCode(t, alice.createCertificate({ der }), 'RESOURCE_EXHAUSTED', 'the fourth, over maxCertificatesPerUser');

  const bob = await (await fixture.client({ ctid: 102 })).login(BOB.name, BOB.password);
  await expectCode(t, bob.deleteCertificate(second.certId), 'OBJECT_NOT_FOUND', "bob deleting alice's certificate");
  await expectCode(t, alice.deleteCertificate('0'.repeat(32)), 'OBJECT_NOT_FOUND', 'an unknown id');
  await expectCode(t, alice.deleteCertificate('not-an-id'), 'INVALID_ARGUMENT', 'a malformed id');
  await expectCode(t, alice.deleteCertificate('A'.repeat(32)), 'INVALID_ARGUMENT', 'upper-case hex is not an id the server makes');
  t.equal((await (await fixture.client({ ctid: 102 })).listPublicObjects(BOB.name)).certificates.length, 0, "bob's list has none of alice's");

  await alice.deleteCertificate(second.certId);
  const left = (await client.listPublicObjects(ALICE.name)).certificates.map((c) => c.certId);
  t.equal(left.length, 2, 'deleted');
  t.notOk(left.includes(second.certId), 'that one');
  await expectCode(t, alice.deleteCertificate(second.certId), 'OBJECT_NOT_FOUND', 'deleting it again');
  const deletions = (await auditRows(fixture.dbPath)).filter((row) => row.op === 'deleteCertificate').map((row) => [row.key_id, row.result]);
  t.same(deletions.slice(-1), [[second.certId, 'OBJECT_NOT_FOUND']], 'failed deletions audited with their code');

  await fixture.server.stop();
  const store = await openAdminStore(fixture.dbPath);
  await store.deleteUser(ALICE.name);
  await store.close();
  t.equal(await certCount(fixture.dbPath), 0, "alice's certificates went with her");
  await fixture.restart();
});

/** Turns the fixture's DB back into a schema-2 one (before public keys) holding the same users and keys. */
function downgradeToSchema2(dbPath: string): void {
  const db = new Database(dbPath);
  try {
    db.exec('DROP INDEX keys_public; DROP INDEX keys_missing_public; DROP TABLE certificates; ALTER TABLE keys DROP COLUMN public_key; PRAGMA user_version = 2');
  } finally {
    db.close();
  }
}

const sqliteOnly = testBackend() === 'postgres' ? 'SQLite schema history: a PostgreSQL store starts with public keys recorded' : false;

t.test('a schema-2 DB (before public keys): key pairs get their public keys at the owner’s next login', { skip: sqliteOnly }, async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await aliceWithKeys(fixture);
  const expected = new Map<string, Buffer>();
  for (const keyId of ['a-ec', 'b-ed', 'c-k1', 'f-x']) expected.set(keyId, Buffer.from(await session.publicKey(keyId)));
  await session.logout();
  await fixture.server.stop();
  downgradeToSchema2(fixture.dbPath);
  // A key whose blob no longer opens: skipped, and the login still works.
  const db = new Database(fixture.dbPath);
  db.prepare("UPDATE keys SET wrapped = randomblob(length(wrapped)) WHERE key_id = 'c-k1'").run();
  db.close();
  await fixture.restart(); // runs migration 3 on the old data

  const lister = await fixture.client({ pid: 9 });
  t.same((await lister.listPublicObjects(ALICE.name)).keys, [], 'before the login: no public key known');
  const again = await (await fixture.client({ pid: 1 })).login(ALICE.name, ALICE.password);
  const listed = await lister.publicObjects(ALICE.name);
  t.same(listed.keys.map((o) => o.key.keyId), ['a-ec', 'b-ed', 'f-x'], 'after it: the key pairs that open');
  for (const object of listed.keys) t.same(Buffer.from(object.spki), expected.get(object.key.keyId), `${object.key.keyId}: the right SPKI`);
  await expectCode(t, again.sign('c-k1', Buffer.from('x')), 'KEY_CORRUPTED', 'the broken key reports itself when used');

  const plans = new Database(fixture.dbPath, { readonly: true });
  const plan = (sql: string): string => (plans.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((row) => row.detail).join('; ');
  t.match(
    plan('SELECT id FROM keys WHERE user_id = 1 AND public_key IS NULL AND key_type IN (1, 2, 4, 5, 6, 7, 8, 9, 12) LIMIT 5'),
    /keys_missing_public/,
    'the backfill query uses its partial index',
  );
  t.match(
    plan("SELECT key_id FROM keys WHERE user_id = 1 AND public_key IS NOT NULL AND key_id > '' ORDER BY key_id LIMIT 5"),
    /keys_public/,
    'the listing uses its partial index',
  );
  plans.close();
});
