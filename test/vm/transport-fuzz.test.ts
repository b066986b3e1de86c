/**
 * Malformed input: thousands of hostile messages from an unprivileged
 * container (and some from the registered server itself). The module must
 * refuse them all, keep working, keep its counters consistent, and leave the
 * kernel log clean (the harness fails the run on any WARN/BUG/Oops line).
 */
import t from 'tap';
import { World } from './lib/world.js';
import { dmesgLines } from './lib/module.js';

const COUNT = Number(process.env.VHSM_FUZZ_COUNT ?? 4000);
const seed = Number(process.env.VHSM_FUZZ_SEED ?? Date.now() % 1_000_000);
const BAD = /WARNING:|BUG:|Oops|KASAN|refcount_t|general protection|Call Trace/;

t.test(`fuzz: ${COUNT} malformed messages from an unprivileged container (seed ${seed})`, async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  await world.echoServer();
  const fuzz = world.agent('ct101', 'fuzz', [String(COUNT), String(seed)], { unprivileged: true });
  const done = await fuzz.expect<{ sent: number }>('done', 600_000);
  t.ok(done.sent > COUNT * 0.9, `sent ${done.sent} datagrams`);
  t.equal(await fuzz.exited, 0, 'the fuzzer ran to the end');

  const client = await world.client('ct101', 101);
  client.send({ cmd: 'burst', count: 200, concurrency: 16, size: 128 });
  t.match(await client.expect('burst'), { ok: 200, errors: {} }, 'the module still routes correctly afterwards');
  const s = await world.admin.stats();
  const n = (k: string): bigint => s.counters[k] ?? 0n;
  t.equal(n('requests'), n('unbound') + n('no_server') + n('too_big') + n('server_busy') + n('quota') + n('forwarded'), 'every request accounted for');
  t.equal(s.pending, 0, 'nothing left pending');
  t.same(dmesgLines().filter((l) => BAD.test(l)), [], 'kernel log clean');
});

t.test(`fuzz: malformed server-side messages from the registered server (seed ${seed + 1})`, async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  const fuzz = world.agent('vhsm', 'fuzz', [String(Math.floor(COUNT / 2)), String(seed + 1), 'server']);
  const done = await fuzz.expect<{ sent: number }>('done', 600_000);
  t.ok(done.sent > 0, `sent ${done.sent} datagrams as the server`);
  await fuzz.exited;
  await world.echoServer();
  const client = await world.client('ct101', 101);
  client.send({ cmd: 'burst', count: 100, concurrency: 8, size: 64 });
  t.match(await client.expect('burst'), { ok: 100, errors: {} }, 'a new server registers and serves after the fuzzing one left');
  t.same(dmesgLines().filter((l) => BAD.test(l)), [], 'kernel log clean');
});
