/**
 * A client that goes away with requests queued: the transport tells the
 * server (the module's CANCEL, the memory hub's equivalent), the server
 * skips the work it has not started, answers each at once with an empty
 * reply (which releases the kernel's charge), and audits it.
 */
import t from 'tap';
import { encodeRequest, PROTOCOL_VERSION } from '../../proto/index.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import type { StampedRequest } from '../../transport/types.js';
import { ALICE, identity, startFixture } from './helpers/fixture.js';
import { rawLogin, selectAll } from './helpers/raw.js';

t.test('memory hub: a closed client cancels its pending requests; late replies are accepted', async (t) => {
  const hub = new MemoryTransportHub();
  const server = hub.createServerTransport();
  const delivered: StampedRequest[] = [];
  const cancelled: bigint[] = [];
  server.listen((r) => delivered.push(r), (id) => cancelled.push(id));
  const client = hub.connect(identity());
  const pending = [client.request(Uint8Array.of(1)), client.request(Uint8Array.of(2))];
  await new Promise((r) => setImmediate(r));
  t.equal(delivered.length, 2, 'both delivered');
  await client.close();
  for (const p of pending) await t.rejects(p, { code: 'ECLOSED' }, 'the client gets ECLOSED at once');
  await new Promise((r) => setImmediate(r));
  t.same(cancelled, delivered.map((r) => r.requestId), 'the server hears of each');
  t.equal(hub.pendingCount, 2, 'but they stay pending until the server answers (as the module keeps them charged)');
  await server.reply(delivered[0]!.requestId, new Uint8Array(0));
  await server.reply(delivered[1]!.requestId, Uint8Array.of(9));
  t.equal(hub.pendingCount, 0, 'answered: gone, and the replies were not refused');
  await server.close();
});

t.test('server: cancelled requests that have not started are skipped, answered empty and audited', async (t) => {
  // One request at a time per container, so the rest queue behind the first.
  const fx = await startFixture({ fairness: { maxInFlightPerContainer: 1, maxInFlightPerContainerShared: 1 } });
  t.teardown(() => fx.close());
  const who = { ctid: ALICE.ctids[0]! };
  const sessionId = await rawLogin(await fx.connect(who), ALICE.name, ALICE.password);
  const leaving = await fx.connect(who);
  const generate = (id: number, type: number, keyId: string) =>
    encodeRequest({ version: PROTOCOL_VERSION, id, session: sessionId, generateKey: { spec: { type, keyId } } });
  const slow = leaving.request(generate(1, 9, 'rsa-first')).catch(() => 'gone'); // RSA-4096: slow, runs first
  const queued = ['k1', 'k2', 'k3'].map((keyId, i) => leaving.request(generate(2 + i, 1, keyId)).catch(() => 'gone'));
  await new Promise((r) => setImmediate(r));
  await leaving.close();
  t.same(await Promise.all([slow, ...queued]), ['gone', 'gone', 'gone', 'gone'], 'the leaving client saw its requests end');

  await fx.server.stop();
  const keys = (await selectAll(fx.dbPath, 'SELECT key_id FROM keys ORDER BY key_id')).map((r) => r.key_id);
  t.same(keys, ['rsa-first'], 'the started request finished; the three queued ones were never run');
  const ctid = fx.backend === 'postgres' ? 'container AS ctid' : 'ctid';
  const rows = (await selectAll(fx.dbPath, `SELECT op, result, ${ctid}, proc_start FROM audit WHERE op = 'cancelled'`)).map((r) => ({ ...r, ctid: Number(r.ctid) }));
  t.same(rows, Array(3).fill({ op: 'cancelled', result: 'CANCELLED', ctid: who.ctid, proc_start: identity().procStart.toString() }), 'each skipped request is audited, with the stamp');
  t.equal(fx.hub.pendingCount, 0, 'every request was answered, so nothing stays charged');
});
