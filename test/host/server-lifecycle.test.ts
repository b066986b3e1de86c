/**
 * Lifecycle: a clean stop answers every accepted request, flushes the audit
 * and closes the DB; requests arriving while stopping get SHUTTING_DOWN;
 * after a restart keys persist and old sessions are gone.
 */
import t from 'tap';
import { VhsmError } from '../../client/index.js';
import { openAdminStore } from '../../server/admin-store.js';
import { VhsmServer } from '../../server/server.js';
import { ALICE, TEST_ITERATIONS, startFixture } from './helpers/fixture.js';
import { expectCode } from './helpers/expect.js';
import { selectAll } from './helpers/raw.js';

t.test('stop answers in-flight requests, then closes transport and DB', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const client = await fixture.client();
  const session = await client.login(ALICE.name, ALICE.password);
  const key = await session.generateKey({ type: 'ec-p256', keyId: 'persistent' });

  const received = fixture.server.stats.requests;
  const inFlight = Array.from({ length: 200 }, (_, i) =>
    i % 2 ? session.sign(key.keyId, new Uint8Array([i])) : session.generateKey({ type: 'hmac', keyId: `during-stop-${i}` }),
  );
  // Let all 200 reach the server (one loop turn in memory, longer through the kernel).
  while (fixture.server.stats.requests < received + 200) await new Promise((resolve) => setTimeout(resolve, 1));
  const stopping = fixture.server.stop();
  const late = session.digest(new Uint8Array(1)).catch((error: unknown) => error);
  await stopping;
  const results = await Promise.allSettled(inFlight);
  const codes = results.map((r) => (r.status === 'fulfilled' ? 'OK' : (r.reason as VhsmError).code));
  t.same([...new Set(codes)], ['OK'], 'all 200 accepted requests were answered with success');
  const lateError = await late;
  t.ok(lateError instanceof VhsmError && ['SHUTTING_DOWN', 'ECONNREFUSED', 'ECONNRESET'].includes(lateError.code), `a request sent while stopping gets a defined error (${(lateError as VhsmError).code})`);
  await expectCode(t, session.digest(new Uint8Array(1)), 'ECONNREFUSED', 'after stop, the transport has no server');

  const [row] = await selectAll(fixture.dbPath, "SELECT count(*) AS n FROM keys WHERE key_id LIKE 'during-stop-%'");
  t.equal(Number(row!.n), 100, 'every acknowledged key is stored');
  const admin = await openAdminStore(fixture.dbPath);
  t.ok((await admin.verifyAudit()).ok, 'audit chain intact after stop');
  await admin.close();
  await t.resolves(fixture.server.stop(), 'stop is idempotent');

  fixture.server = await VhsmServer.open({ storagePath: fixture.dbPath, pbkdf2Iterations: TEST_ITERATIONS });
  fixture.server.serve(await fixture.transports.server());
  await expectCode(t, session.sign(key.keyId, new Uint8Array(1)), 'SESSION_INVALID', 'sessions do not survive a restart');
  const again = await client.login(ALICE.name, ALICE.password);
  t.equal((await again.keyInfo('persistent')).type, 'ec-p256', 'keys do');
  t.equal((await again.listKeys()).length, 101, 'all of them');
});

t.test('open refuses bad options', async (t) => {
  await t.rejects(VhsmServer.open({ storagePath: '/nonexistent/vhsm.db' }), { code: 'NOT_FOUND' }, 'missing DB');
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  await t.rejects(VhsmServer.open({ storagePath: fixture.dbPath, pbkdf2Iterations: 10 }), RangeError, 'too few PBKDF2 iterations');
});
