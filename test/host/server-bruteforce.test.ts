/**
 * Login brute force: exponential backoff, then a lock per (user, container)
 * that only the admin clears; unknown users get exactly the same treatment
 * and cost the same time as wrong passwords.
 */
import t from 'tap';
import { VhsmError, type VhsmClient } from '../../client/index.js';
import { backoffDelayMs, DEFAULT_LOCKOUT_POLICY, evaluateGate, nextFailureState } from '../../server/lockout.js';
import { openAdminStore } from '../../server/admin-store.js';
import { ALICE, startFixture } from './helpers/fixture.js';
import { expectCode } from './helpers/expect.js';

const POLICY = { freeAttempts: 2, backoffBaseMs: 100, backoffMaxMs: 400, lockAfter: 5 };

async function attempt(client: VhsmClient, user: string, password: string): Promise<{ code: string; retryAfterMs?: number }> {
  try {
    const session = await client.login(user, password);
    await session.logout();
    return { code: 'OK' };
  } catch (error) {
    if (!(error instanceof VhsmError)) throw error;
    return error.retryAfterMs === undefined ? { code: error.code } : { code: error.code, retryAfterMs: error.retryAfterMs };
  }
}

t.test('policy arithmetic', async (t) => {
  const policy = DEFAULT_LOCKOUT_POLICY;
  t.equal(backoffDelayMs(policy, 0), 0);
  t.equal(backoffDelayMs(policy, 2), 0, 'free attempts');
  t.equal(backoffDelayMs(policy, 3), 1_000);
  t.equal(backoffDelayMs(policy, 4), 2_000, 'doubles');
  t.equal(backoffDelayMs(policy, 40), policy.backoffMaxMs, 'capped');
  let state = nextFailureState(policy, undefined, 0);
  for (let i = 1; i < policy.lockAfter; i++) state = nextFailureState(policy, state, i);
  t.ok(state.locked, `locked after ${policy.lockAfter} failures`);
  t.same(evaluateGate(policy, state, 10 ** 12), { allowed: false, code: 'LOCKED_OUT' }, 'a lock does not expire by itself');
});

for (const who of ['a known user', 'an unknown user'] as const) {
  t.test(`brute force against ${who}: backoff, then lockout`, async (t) => {
    // A hand-driven clock makes the backoff arithmetic exact, whatever the machine's load.
    let now = Date.now();
    const sleep = async (ms: number): Promise<void> => {
      now += ms;
    };
    const fixture = await startFixture({ lockout: POLICY, clock: () => now });
    t.teardown(() => fixture.close());
    const attacker = await fixture.client({ ctid: 101, pid: 666 });
    const name = who === 'a known user' ? ALICE.name : 'mallory';

    t.same(await attempt(attacker, name, 'guess-1'), { code: 'BAD_CREDENTIALS' }, 'failure 1');
    t.same(await attempt(attacker, name, 'guess-2'), { code: 'BAD_CREDENTIALS' }, 'failure 2 (free attempts used up)');
    const throttled = await attempt(attacker, name, 'guess-3');
    t.equal(throttled.code, 'LOGIN_THROTTLED', 'the next attempt comes too early');
    t.equal(throttled.retryAfterMs, 100, 'retry after the base delay');
    if (who === 'a known user') {
      t.equal((await attempt(attacker, name, ALICE.password)).code, 'LOGIN_THROTTLED', 'even the right password is not checked while throttled');
    }
    // Backoff doubles: 100, 200, then the lock at failure 5.
    await sleep(60);
    t.same(await attempt(attacker, name, 'guess-3'), { code: 'LOGIN_THROTTLED', retryAfterMs: 40 }, 'still throttled 60 ms later');
    await sleep(40);
    t.same(await attempt(attacker, name, 'guess-3'), { code: 'BAD_CREDENTIALS' }, 'failure 3 after waiting');
    t.same(await attempt(attacker, name, 'guess-4'), { code: 'LOGIN_THROTTLED', retryAfterMs: 200 }, 'the delay doubled');
    await sleep(200);
    t.same(await attempt(attacker, name, 'guess-4'), { code: 'BAD_CREDENTIALS' }, 'failure 4');
    t.same(await attempt(attacker, name, 'guess-5'), { code: 'LOGIN_THROTTLED', retryAfterMs: 400 }, 'capped at the maximum');
    await sleep(400);
    t.same(await attempt(attacker, name, 'guess-5'), { code: 'BAD_CREDENTIALS' }, 'failure 5');
    t.same(await attempt(attacker, name, 'guess-6'), { code: 'LOCKED_OUT' }, 'locked');
    await sleep(24 * 3600_000);
    t.same(await attempt(attacker, name, who === 'a known user' ? ALICE.password : 'guess-7'), { code: 'LOCKED_OUT' }, 'still locked a day later, even for the right password');

    // Other containers are not affected (per (user, container)).
    const other = await fixture.client({ ctid: 102, pid: 1 });
    t.same(await attempt(other, name, 'guess'), { code: 'BAD_CREDENTIALS' }, 'another container is not locked');

    if (who === 'a known user') {
      const store = await openAdminStore(fixture.dbPath);
      const alice = (await store.listUsers()).find((user) => user.name === ALICE.name)!;
      t.equal(alice.locked, true, 'the admin sees the lock');
      t.same(
        alice.failures.map((f) => [f.ctid, f.failures, f.locked]),
        [
          [101, 5, true],
          [102, 1, false],
        ],
        'per container',
      );
      t.equal(await store.unlockUser(ALICE.name, 101), 1, 'admin unlocks');
      await store.close();
      t.same(await attempt(attacker, name, ALICE.password), { code: 'OK' }, 'login works after unlock');
      const after = await openAdminStore(fixture.dbPath);
      t.same((await after.listUsers()).find((user) => user.name === ALICE.name)!.failures.map((f) => f.ctid), [102], 'success cleared the counter of 101 only');
      await after.close();
    }
  });
}

t.test('parallel guesses cannot slip past the backoff', async (t) => {
  const fixture = await startFixture({ lockout: { freeAttempts: 3, backoffBaseMs: 60_000, backoffMaxMs: 60_000, lockAfter: 100 } });
  t.teardown(() => fixture.close());
  const client = await fixture.client();
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => attempt(client, ALICE.name, `guess-${i}`)));
  const counts = results.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.code]: (acc[r.code] ?? 0) + 1 }), {});
  t.same(counts, { BAD_CREDENTIALS: 3, LOGIN_THROTTLED: 37 }, 'exactly the free attempts were checked');
});

t.test('an unknown user is rejected in the same time as a wrong password', async (t) => {
  // Enough iterations that the derivation dominates the measurement: without the
  // dummy derivation an unknown user would be rejected ~20x faster. The bounds
  // are loose because this machine's load is noisy; the property is structural.
  const iterations = 150_000;
  const fixture = await startFixture({
    pbkdf2Iterations: iterations,
    userIterations: iterations,
    users: [ALICE],
    lockout: { freeAttempts: 10_000, backoffBaseMs: 0, backoffMaxMs: 0, lockAfter: 10_000 },
  });
  t.teardown(() => fixture.close());
  const client = await fixture.client();

  const time = async (user: string): Promise<number> => {
    const started = process.hrtime.bigint();
    await expectCode(t, client.login(user, 'not the password'), 'BAD_CREDENTIALS', `${user}: rejected`);
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  await time(ALICE.name); // warm up
  await time('nobody');
  const known: number[] = [];
  const unknown: number[] = [];
  for (let i = 0; i < 10; i++) {
    known.push(await time(ALICE.name));
    unknown.push(await time(`nobody${i}`));
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const ratio = median(unknown) / median(known);
  t.comment(`median wrong password ${median(known).toFixed(1)} ms, unknown user ${median(unknown).toFixed(1)} ms`);
  t.ok(ratio > 0.5 && ratio < 2, `unknown/known time ratio ${ratio.toFixed(2)} is close to 1`);
});
