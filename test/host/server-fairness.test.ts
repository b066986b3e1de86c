/**
 * Per-container fairness: a flood from one container does not delay
 * another's requests much, a full queue answers BUSY (never silence), and the
 * scheduler serves containers round robin.
 */
import t from 'tap';
import { FairScheduler } from '../../server/fairness.js';
import { ALICE, BOB, startFixture } from './helpers/fixture.js';

t.test('scheduler: round robin between containers, bounded in flight', async (t) => {
  const scheduler = new FairScheduler({ maxInFlight: 1, maxInFlightPerContainer: 1, maxInFlightPerContainerShared: 1, activeWindowMs: 50, maxQueuedPerContainer: 100 });
  const order: string[] = [];
  const task = (name: string) => async (): Promise<void> => {
    order.push(name);
    await new Promise((resolve) => setImmediate(resolve));
  };
  for (let i = 0; i < 5; i++) scheduler.submit(1, task(`a${i}`));
  scheduler.submit(2, task('b0'));
  scheduler.submit(3, task('c0'));
  scheduler.submit(2, task('b1'));
  await scheduler.idle();
  // a0 starts at once; a1 was queued before b0 and c0 arrived; from then on
  // the containers alternate, so container 1's flood never runs twice in a row
  // while others wait.
  t.same(order, ['a0', 'a1', 'b0', 'c0', 'a2', 'b1', 'a3', 'a4'], 'containers alternate; the flood does not go first');

  const limited = new FairScheduler({ maxInFlight: 10, maxInFlightPerContainer: 2, maxInFlightPerContainerShared: 2, activeWindowMs: 50, maxQueuedPerContainer: 3 });
  let running = 0;
  let peak = 0;
  const slow = async (): Promise<void> => {
    running += 1;
    peak = Math.max(peak, running);
    await new Promise((resolve) => setTimeout(resolve, 5));
    running -= 1;
  };
  const accepted = Array.from({ length: 6 }, () => limited.submit(7, slow));
  t.same(accepted, [true, true, true, true, true, false], 'two start, three queue, the sixth is refused');
  await limited.idle();
  t.equal(peak, 2, 'never more than two in flight for one container');
  const value = await limited.run(7, async () => 42);
  t.equal(value, 42, 'run() returns the task result');
});

t.test('scheduler: a container alone gets the wide limit, shared it gets the narrow one', async (t) => {
  const scheduler = new FairScheduler({ maxInFlight: 100, maxInFlightPerContainer: 8, maxInFlightPerContainerShared: 2, activeWindowMs: 40, maxQueuedPerContainer: 100 });
  const running = new Map<number, number>();
  const peaks = new Map<number, number>();
  const gates: (() => void)[] = [];
  const task = (container: number) => async (): Promise<void> => {
    running.set(container, (running.get(container) ?? 0) + 1);
    peaks.set(container, Math.max(peaks.get(container) ?? 0, running.get(container)!));
    await new Promise<void>((resolve) => gates.push(resolve));
    running.set(container, running.get(container)! - 1);
  };
  const release = async (): Promise<void> => {
    for (const open of gates.splice(0)) open();
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
  };
  for (let i = 0; i < 20; i++) scheduler.submit(1, task(1));
  t.equal(running.get(1), 8, 'alone: eight at once');
  scheduler.submit(2, task(2));
  t.equal(running.get(2), 1, "the newcomer's request starts at once");
  await release();
  t.equal(running.get(1), 2, 'shared: the busy container is down to two');
  await release();
  t.equal(running.get(1), 2, 'and stays there while the other is active');
  await new Promise((resolve) => setTimeout(resolve, 60));
  await release();
  t.equal(running.get(1), 8, 'the other went quiet: the wide limit is back');
  while (scheduler.queued > 0 || scheduler.active > 0) await release();
  t.equal(peaks.get(1), 8, 'never more than the wide limit');
});

t.test('a flood from one container does not delay another much', async (t) => {
  const fixture = await startFixture({ users: [ALICE, BOB] });
  t.teardown(() => fixture.close());
  const flooder = await (await fixture.client({ ctid: 101 })).login(ALICE.name, ALICE.password);
  const victim = await (await fixture.client({ ctid: 102 })).login(BOB.name, BOB.password);
  const floodKey = await flooder.generateKey({ type: 'ec-p256' });
  const victimKey = await victim.generateKey({ type: 'ed25519' });
  const data = new Uint8Array(64);

  // Baseline: the victim's latency alone.
  const alone: number[] = [];
  for (let i = 0; i < 10; i++) {
    const started = performance.now();
    await victim.sign(victimKey.keyId, data);
    alone.push(performance.now() - started);
  }

  const floodStarted = performance.now();
  const FLOOD = 3_000;
  let floodDone = 0;
  const flood = Promise.allSettled(
    Array.from({ length: FLOOD }, () => flooder.sign(floodKey.keyId, data).then(() => (floodDone += 1))),
  ).then(() => performance.now() - floodStarted);

  const during: number[] = [];
  const floodProgressAtVictimEnd: number[] = [];
  for (let i = 0; i < 10; i++) {
    const started = performance.now();
    await victim.sign(victimKey.keyId, data);
    during.push(performance.now() - started);
    floodProgressAtVictimEnd.push(floodDone);
  }
  const floodMs = await flood;
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  t.comment(`victim median alone ${median(alone).toFixed(1)} ms, during the flood ${median(during).toFixed(1)} ms (max ${Math.max(...during).toFixed(1)}); flood of ${FLOOD} took ${floodMs.toFixed(0)} ms`);
  t.ok(floodProgressAtVictimEnd[9]! < FLOOD, `the victim finished its 10 requests before the flood did (flood at ${floodProgressAtVictimEnd[9]}/${FLOOD})`);
  t.ok(median(during) < floodMs / 10, 'the victim\'s median latency is a small fraction of the flood\'s duration');
});

t.test('a full queue answers BUSY, and every request gets an answer', async (t) => {
  const fixture = await startFixture({ fairness: { maxInFlight: 64, maxInFlightPerContainer: 2, maxQueuedPerContainer: 20 } });
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const results = await Promise.allSettled(Array.from({ length: 300 }, () => session.digest(new Uint8Array(8))));
  const codes = results.map((r) => (r.status === 'fulfilled' ? 'OK' : (r.reason as { code: string }).code));
  const busy = codes.filter((code) => code === 'BUSY').length;
  const ok = codes.filter((code) => code === 'OK').length;
  t.equal(ok + busy, 300, 'every request answered: OK or BUSY');
  t.ok(busy > 0 && ok >= 22, `${ok} served, ${busy} refused with BUSY`);
  const other = await (await fixture.client({ ctid: 102 })).login(BOB.name, BOB.password);
  t.equal((await other.digest(new Uint8Array(1))).length, 32, 'another container is unaffected');
});
