/**
 * Benchmark section 4 (host, in-memory transport, DB on disk): the process's
 * RSS with 10,000 stored keys and 1,000 open sessions.
 *
 * Keys are created the way clients create them, through the full path:
 * 100 users (PBKDF2 1,000 iterations: the count changes login time, not
 * memory), one session each, 100 generateKey calls per user with 64 in
 * flight overall, so the group commit writes many keys per transaction
 * (one fsync per batch, not per key). Types cycle ec-p256, ed25519,
 * aes-256, hmac (RSA generation takes ~100 ms per key and would dominate the
 * run without telling anything more about memory).
 *
 * Then 1,000 sessions (10 per user, 10 containers) each use 10 different
 * keys of their user once, so every one of the 10,000 keys sits unwrapped
 * in some session's KeyObject cache: the worst case for 10k keys / 1k sessions.
 * RSS is read after a full GC (run with --expose-gc) at each stage. The
 * clients live in the same process (they are small: a transport and a
 * session id each); the RSS is the server's plus theirs, so an upper bound.
 *
 *   node --expose-gc dist/bench/memory.js '{"keys":10000,"sessions":1000}'
 */
import { performance } from 'node:perf_hooks';
import type { VhsmSession } from '../client/index.js';
import type { KeyTypeName } from '../client/types.js';
import { options, progress, result, round3, runMain } from './lib/measure.js';
import { startBenchServer, type BenchServer, type BenchUser } from './lib/server.js';

const opts = options({ keys: 10_000, sessions: 1_000, users: 100, containers: 10, inFlight: 64 });
const TYPES: KeyTypeName[] = ['ec-p256', 'ed25519', 'aes-256', 'hmac'];
const DATA = new Uint8Array(32).fill(7);

interface Stage {
  readonly stage: string;
  readonly rssMB: number;
  readonly heapUsedMB: number;
  readonly externalMB: number;
  readonly sessions: number;
}

function snapshot(stage: string, server: BenchServer): Stage {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  const mb = (bytes: number): number => round3(bytes / 2 ** 20);
  return { stage, rssMB: mb(usage.rss), heapUsedMB: mb(usage.heapUsed), externalMB: mb(usage.external + usage.arrayBuffers), sessions: server.server.stats.sessions };
}

/** Runs `count` tasks with at most `limit` at once. */
async function pool(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

async function use(session: VhsmSession, keyId: string, type: KeyTypeName): Promise<void> {
  if (type === 'aes-256') await session.encrypt(keyId, DATA);
  else if (type === 'hmac') await session.mac(keyId, DATA);
  else await session.sign(keyId, DATA);
}

async function main(): Promise<void> {
  if (!(globalThis as { gc?: unknown }).gc) throw new Error('run with node --expose-gc');
  const ctids = Array.from({ length: opts.containers }, (_, i) => 3000 + i);
  const users: BenchUser[] = Array.from({ length: opts.users }, (_, i) => ({ name: `user${i}`, password: `password of user ${i}`, ctids, iterations: 1_000 }));
  const keysPerUser = Math.ceil(opts.keys / opts.users);
  const sessionsPerUser = Math.ceil(opts.sessions / opts.users);

  progress(`memory: creating ${opts.users} users`);
  const server = await startBenchServer('disk', users, { sessionLimits: { maxSessions: opts.sessions + opts.users + 10 } });
  const stages: Stage[] = [snapshot('server started, no keys', server)];

  // 1. Keys: one session per user, generateKey calls in parallel.
  const owners: VhsmSession[] = [];
  for (let u = 0; u < opts.users; u++) owners.push(await (await server.client(ctids[u % ctids.length]!, 7000 + u)).login(users[u]!.name, users[u]!.password));
  const keyIds: string[][] = users.map(() => []);
  const t0 = performance.now();
  await pool(opts.keys, opts.inFlight, async (i) => {
    const u = i % opts.users;
    const type = TYPES[Math.floor(i / opts.users) % TYPES.length]!;
    const info = await owners[u]!.generateKey({ type });
    keyIds[u]!.push(`${type}\u0000${info.keyId}`);
    if (i % 1000 === 999) progress(`memory: ${i + 1}/${opts.keys} keys`);
  });
  const keySeconds = (performance.now() - t0) / 1000;
  for (const session of owners) await session.logout();
  stages.push(snapshot(`${opts.keys} keys stored, no sessions`, server));

  // 2. Sessions.
  const sessions: { session: VhsmSession; user: number; index: number }[] = [];
  const t1 = performance.now();
  await pool(opts.sessions, opts.inFlight, async (i) => {
    const u = i % opts.users;
    const client = await server.client(ctids[i % ctids.length]!, 10_000 + i);
    sessions.push({ session: await client.login(users[u]!.name, users[u]!.password), user: u, index: Math.floor(i / opts.users) });
    if (i % 200 === 199) progress(`memory: ${i + 1}/${opts.sessions} sessions`);
  });
  const sessionSeconds = (performance.now() - t1) / 1000;
  stages.push(snapshot(`${opts.sessions} sessions open, no key used`, server));

  // 3. Each session uses its share of its user's keys: all keys end up cached once.
  const perSession = Math.ceil(keysPerUser / sessionsPerUser);
  await pool(sessions.length, opts.inFlight, async (i) => {
    const { session, user, index } = sessions[i]!;
    for (const entry of keyIds[user]!.slice(index * perSession, (index + 1) * perSession)) {
      const [type, keyId] = entry.split('\u0000') as [KeyTypeName, string];
      await use(session, keyId, type);
    }
  });
  stages.push(snapshot(`${opts.sessions} sessions, every key unwrapped in one session's cache`, server));

  const last = stages[stages.length - 1]!;
  result('memory', {
    keys: opts.keys,
    sessions: opts.sessions,
    keyTypes: TYPES,
    keyCreationSeconds: round3(keySeconds),
    keysPerSecond: Math.round(opts.keys / keySeconds),
    loginSeconds: round3(sessionSeconds),
    stages,
    rssMB: last.rssMB,
    baselineRssMB: stages[0]!.rssMB,
  });
  await server.close();
}

runMain('memory', main);
