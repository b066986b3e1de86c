/**
 * What happens when things die: the server with requests pending, a server
 * that never answers, a client that leaves with requests pending, the VHSM
 * namespace itself, and the module under load. Every client must get a
 * defined error, never silence, and the counters must add up.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { World } from './lib/world.js';
import { checkInvariants } from './lib/counters.js';
import { setParam, unloadModule, moduleLoaded } from './lib/module.js';

type Burst = { ok: number; errors: Record<string, number> };
type One = { ok: boolean; code?: string; message?: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

t.test('server killed with requests pending: ECONNRESET, then ECONNREFUSED, then a new server works', async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  const server = await world.echoServer('silent');
  const client = await world.client('ct101', 101);
  client.send({ cmd: 'burst', count: 20, concurrency: 20, size: 32 });
  await waitFor('20 requests at the server', async () => {
    server.send({ cmd: 'stats' });
    const s = await server.expect<{ received: number }>('stats');
    return s.received === 20 ? true : undefined;
  });
  t.equal((await world.admin.stats()).pending, 20, '20 pending in the kernel');
  await server.kill('SIGKILL');
  const burst = await client.expect<Burst>('burst');
  t.same(burst.errors, { ECONNRESET: 20 }, 'each pending request failed with ECONNRESET');
  const after = await world.admin.stats();
  t.equal(after.server, undefined, 'registration dropped');
  t.equal(after.pending, 0, 'nothing pending');
  client.send({ cmd: 'one' });
  t.match(await client.expect<One>('one'), { ok: false, code: 'ECONNREFUSED' }, 'no server: ECONNREFUSED');
  await world.echoServer('echo');
  client.send({ cmd: 'one' });
  t.match(await client.expect<One>('one'), { ok: true }, 'a new server registers and answers');
  checkInvariants(t, await world.admin.stats());
});

t.test('a server that never answers: ETIMEDOUT at the kernel deadline', async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  setParam('timeout_ms', 300);
  await world.echoServer('silent');
  const client = await world.client('ct101', 101);
  const started = Date.now();
  client.send({ cmd: 'burst', count: 5, concurrency: 5, size: 8 });
  const burst = await client.expect<Burst>('burst');
  t.same(burst.errors, { ETIMEDOUT: 5 }, 'each request timed out');
  t.ok(Date.now() - started >= 300, 'not before the deadline');
  const s = await world.admin.stats();
  t.equal(s.counters.timeouts, 5n, 'timeouts counted');
  t.equal(s.pending, 0, 'timed-out entries freed');
  checkInvariants(t, s);
});

t.test('a client that exits with requests pending: they stay charged until the deadline, counters consistent', async (t) => {
  const world = await World.create({ ct101: 101, ct102: 102 });
  t.teardown(() => world.destroy());
  setParam('timeout_ms', 2000);
  const server = await world.echoServer('silent');
  const leaver = await world.client('ct101', 101);
  leaver.send({ cmd: 'abandon', count: 50 });
  t.equal(await leaver.exited, 0, 'client exited');
  const charged = (await world.admin.list()).find((b) => b.ctid === 101);
  t.equal(charged?.pending, 50, 'its 50 requests are still charged to its container (the server holds the work)');
  t.ok((charged?.queuedBytes ?? 0) > 0, 'and their bytes of the server queue');
  const s = await waitFor('pending entries of the dead client to expire', async () => {
    const s = await world.admin.stats();
    return s.pending === 0 ? s : undefined;
  });
  t.equal(s.counters.orphaned, 50n, 'its 50 pending requests were orphaned when it exited');
  t.equal(s.counters.client_gone, 50n, 'and finished (here: at the deadline) without an answer');
  t.equal(s.counters.timeouts, 50n, 'counted as timeouts');
  t.match(
    (await world.admin.list()).find((b) => b.ctid === 101),
    { ctid: 101, pending: 0, queuedBytes: 0 },
    'nothing charged any more',
  );
  checkInvariants(t, s);
  // The other container is unaffected.
  await server.kill();
  await world.echoServer('echo');
  const other = await world.client('ct102', 102);
  other.send({ cmd: 'burst', count: 100, concurrency: 10, size: 64 });
  t.match(await other.expect<Burst>('burst'), { ok: 100, errors: {} }, 'another container still served');
  checkInvariants(t, await world.admin.stats());
});

t.test('the VHSM namespace deleted: registration and binding gone', async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  const server = await world.echoServer('echo');
  t.ok((await world.admin.stats()).server, 'registered');
  execFileSync('ip', ['netns', 'delete', 'vhsm']);
  await server.kill('SIGKILL'); // the last reference to the namespace
  await waitFor('the namespace to be cleaned up', async () => {
    const s = await world.admin.stats();
    const list = await world.admin.list();
    return s.server === undefined && !list.some((b) => b.ctid === 412) ? true : undefined;
  });
  t.pass('server registration and CTID 412 binding are gone');
  const client = await world.client('ct101', 101);
  client.send({ cmd: 'one' });
  t.match(await client.expect<One>('one'), { ok: false, code: 'ECONNREFUSED' }, 'clients are refused, not hung');
});

t.test('rmmod with a server and clients running and requests in flight', async (t) => {
  const world = await World.create({ ct101: 101, ct102: 102 });
  t.teardown(() => world.destroy());
  const server = await world.echoServer('silent');
  const a = await world.client('ct101', 101);
  const b = await world.client('ct102', 102);
  a.send({ cmd: 'burst', count: 10, concurrency: 10, size: 16 });
  b.send({ cmd: 'burst', count: 10, concurrency: 10, size: 16 });
  await waitFor('requests pending', async () => ((await world.admin.stats()).pending === 20 ? true : undefined));
  unloadModule();
  t.notOk(moduleLoaded(), 'module unloaded while sockets were open');
  for (const [name, c] of [['a', a], ['b', b]] as const) {
    const r = await c.expect<Burst>('burst', 30_000);
    t.equal(r.ok, 0, `${name}: nothing succeeded`);
    t.equal(Object.values(r.errors).reduce((x, y) => x + y, 0), 10, `${name}: every pending request failed with an error, none hung: ${JSON.stringify(r.errors)}`);
  }
  void server;
});
