/**
 * A session holding a key while the admin or another session takes access
 * away. A request whose key is in the session is checked when its audit row
 * is written (backend.ts CommitCheck: in SQLite's batch transaction, in
 * PostgreSQL's audit statement); any other request before the work. Either way:
 *
 * - a deleted key is not used again; a replaced one (same id, new material)
 *   never signs with the old material once the new one is stored;
 * - a container removed from the user's set gets SESSION_INVALID on its
 *   next request, also for requests in flight when it happens (at most
 *   those already past their check are answered);
 * - every reply has its audit row with the result the client saw: no OK row
 *   for a refused request, no refused row for an answered one.
 */
import t from 'tap';
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { VhsmError } from '../../client/index.js';
import { openAdminStore } from '../../server/admin-store.js';
import { expectCode } from './helpers/expect.js';
import { ALICE, BOB, startFixture } from './helpers/fixture.js';
import { auditRows } from './helpers/raw.js';

const message = Buffer.from('stale access');

function p256Pkcs8(): { pkcs8: Buffer; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { pkcs8: privateKey.export({ format: 'der', type: 'pkcs8' }), spki: publicKey.export({ format: 'der', type: 'spki' }) };
}

const verifies = (spki: Buffer, signature: Uint8Array): boolean =>
  verify('sha256', message, createPublicKey({ key: spki, format: 'der', type: 'spki' }), signature);

t.test('a key deleted or replaced by another session', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const holder = await (await fixture.client({ pid: 501 })).login(ALICE.name, ALICE.password);
  const other = await (await fixture.client({ pid: 502 })).login(ALICE.name, ALICE.password);

  const first = p256Pkcs8();
  await holder.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: first.pkcs8, keyId: 'swapped' });
  t.ok(verifies(first.spki, await holder.sign('swapped', message)), 'signs with the first key (now held by the session)');

  await other.deleteKey('swapped');
  await expectCode(t, holder.sign('swapped', message), 'KEY_NOT_FOUND', 'deleted by another session');
  await expectCode(t, holder.sign('swapped', message), 'KEY_NOT_FOUND', 'and again');

  await holder.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: first.pkcs8, keyId: 'swapped' });
  t.ok(verifies(first.spki, await holder.sign('swapped', message)), 'imported again: held again');
  const second = p256Pkcs8();
  await other.deleteKey('swapped');
  await other.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: second.pkcs8, keyId: 'swapped' });

  // The held row is gone: refused at commit once, then the retry loads the new key.
  let signature: Uint8Array | undefined;
  for (let attempt = 0; attempt < 2 && !signature; attempt++) {
    try {
      signature = await holder.sign('swapped', message);
    } catch (error) {
      t.equal(error instanceof VhsmError && error.code, 'KEY_NOT_FOUND', `attempt ${attempt + 1}: refused as replaced`);
    }
  }
  t.ok(signature && verifies(second.spki, signature), 'the replacement signs');
  t.notOk(signature && verifies(first.spki, signature), 'the old material does not');
});

t.test('a container removed while its requests are in flight', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const key = await session.generateKey({ type: 'hmac', keyId: 'busy' });
  await session.mac(key.keyId, message); // held by the session from here on
  const idle = await (await fixture.client({ pid: 4343 })).login(ALICE.name, ALICE.password);
  await idle.mac(key.keyId, message); // another session holding it, quiet during the deny
  // Bob's requests share the commit batches with Alice's and must not suffer from hers being refused.
  const bob = await (await fixture.client({ ctid: 102, pid: 777 })).login(BOB.name, BOB.password);
  const bobKey = await bob.generateKey({ type: 'hmac', keyId: 'bystander' });
  await bob.mac(bobKey.keyId, message);
  const auditBefore = (await auditRows(fixture.dbPath)).length;

  const store = await openAdminStore(fixture.dbPath);
  const outcomes: string[] = [];
  let bobDone = 0;
  let bobRunning = true;
  const bystander = (async () => {
    while (bobRunning) {
      await bob.mac(bobKey.keyId, message);
      bobDone += 1;
    }
  })();
  const load = Array.from({ length: 4 }, async () => {
    for (;;) {
      try {
        await session.mac(key.keyId, message);
        outcomes.push('OK');
      } catch (error) {
        outcomes.push(error instanceof VhsmError ? error.code : String(error));
        return;
      }
    }
  });
  while (outcomes.length < 40) await new Promise((resolve) => setImmediate(resolve));
  await store.denyContainers(ALICE.name, [101]);
  const deniedAt = outcomes.length;
  await Promise.all(load);
  bobRunning = false;
  await bystander;
  await store.close();
  t.ok(bobDone > 0, `the other user's requests in the same batches were all answered (${bobDone})`);

  const refused = outcomes.filter((code) => code !== 'OK');
  t.equal(refused.length, 4, 'each of the 4 loops ends with one refusal');
  t.same([...new Set(refused)], ['SESSION_INVALID'], 'refused as an invalid session');
  t.ok(outcomes.length - deniedAt <= 8, `at most the requests in flight at the deny are answered after it (${outcomes.length - deniedAt - 4})`);
  await expectCode(t, idle.mac(key.keyId, message), 'SESSION_INVALID', "the other session's next request");

  await fixture.server.stop(); // every audit row written
  const all = (await auditRows(fixture.dbPath)).slice(auditBefore).filter((row) => row.op === 'mac');
  t.same([...new Set(all.filter((row) => row.ctid === 102).map((row) => row.result))], ['OK'], "bob's rows are all OK");
  t.equal(all.filter((row) => row.ctid === 102).length, bobDone, 'one per answered request');
  const rows = all.filter((row) => row.ctid === 101);
  t.equal(rows.filter((row) => row.result === 'OK').length, outcomes.filter((code) => code === 'OK').length, 'one OK row per answered MAC');
  t.equal(rows.filter((row) => row.result === 'SESSION_INVALID').length, refused.length + 1, 'one SESSION_INVALID row per refusal');
  t.equal(rows.length, outcomes.length + 1, 'no other rows');
});
