/**
 * Routing and stamping through the real module: an echo server in the VHSM
 * netns, clients in three other netns, 10,000 interleaved concurrent
 * requests; every reply must come back to its sender, stamped with the
 * sender's CTID and PID as its container sees it.
 */
import t from 'tap';
import { World } from './lib/world.js';

const CLIENTS = { ct101: 101, ct102: 102, ct103: 103 };
const TOTAL = 10_000;

t.test('10,000 interleaved requests from three containers: none lost, none misrouted', async (t) => {
  const world = await World.create(CLIENTS);
  t.teardown(() => world.destroy());
  const server = await world.echoServer();

  // ct101's client runs in a PID namespace of its own, where it is PID 1;
  // the container (bound by netns) counts PIDs as the host does, and so
  // does the stamp.
  const nested = world.agent('ct101', 'client', ['101'], { newPidNs: true });
  const nestedReady = await nested.expect<{ nspid: number[] }>('ready');
  t.equal(nestedReady.nspid.at(-1), 1, 'the ct101 client is PID 1 in its own pid namespace');
  t.not(nestedReady.nspid[0], 1, 'and has another PID in the container');
  const clients = [nested, ...(await Promise.all([world.client('ct102', 102), world.client('ct103', 103)]))];
  const before = await world.admin.stats();
  const share = Math.ceil(TOTAL / clients.length);
  for (const c of clients) c.send({ cmd: 'burst', count: share, concurrency: 48, size: 256 });
  const results = await Promise.all(clients.map((c) => c.expect<{ ok: number; misrouted: number; badStamp: number; errors: Record<string, number>; cookies: string[]; ms: number }>('burst', 600_000)));

  let ok = 0;
  const cookies = new Set<string>();
  results.forEach((r, i) => {
    t.same(r.errors, {}, `client ${i} saw no errors`);
    t.equal(r.misrouted, 0, `client ${i}: no reply carried another request's payload`);
    t.equal(r.badStamp, 0, `client ${i}: every stamp matched its CTID, PID, uid, gid`);
    t.equal(r.cookies.length, 1, `client ${i}: one netns cookie`);
    cookies.add(r.cookies[0]!);
    ok += r.ok;
  });
  t.equal(ok, share * clients.length, 'every request answered correctly');
  t.equal(cookies.size, 3, 'three containers, three distinct netns cookies');

  const after = await world.admin.stats();
  const delta = (k: string): bigint => (after.counters[k] ?? 0n) - (before.counters[k] ?? 0n);
  t.equal(delta('requests'), BigInt(ok), 'requests counted');
  t.equal(delta('forwarded'), BigInt(ok), 'all forwarded');
  t.equal(delta('replies'), BigInt(ok), 'all replied');
  t.equal(delta('responses'), BigInt(ok), 'all delivered');
  t.equal(after.pending, 0, 'nothing left pending');
  const bindings = await world.admin.list();
  t.same(bindings.map((b) => b.ctid).sort(), [101, 102, 103, 412], 'bindings listed');
  for (const b of bindings) if (b.ctid !== 412) t.ok(cookies.has(b.netnsCookie.toString()), `stamped cookie of CTID ${b.ctid} is its netns cookie`);
  t.equal(after.server?.ctid, 412, 'server registered from CTID 412');
  server.send({ cmd: 'stats' });
  t.equal((await server.expect<{ received: number }>('stats')).received, ok, 'server saw each request once');
  t.comment(`10k round trips: ${results.map((r) => r.ms).join(' / ')} ms per client`);
});
