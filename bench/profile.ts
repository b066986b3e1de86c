/**
 * A profiling workload: VHSM signatures over the in-memory transport for a
 * few seconds, nothing else. The V8 CPU profiler (the one behind
 * `node --cpu-prof`, driven here through node:inspector so that start-up and
 * warm-up stay out of the profile) records the measured window only, and
 * writes a .cpuprofile (open it in Chrome DevTools or speedscope for a flame
 * graph). `npm run bench -- --profile` runs this for a few cases and prints
 * a summary of each (dist/bench/profile-summary.js).
 *
 *   node dist/bench/profile.js '{"medium":"disk","op":"p256","clients":1,"ms":3000,"out":"p.cpuprofile"}'   (op: p256, ed25519 or hmac)
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { VhsmSession } from '../client/index.js';
import type { KeyTypeName } from '../client/types.js';
import { closedLoop, options, result, runMain } from './lib/measure.js';
import { startBenchServer, type DbMedium } from './lib/server.js';

const opts = options({ medium: 'disk' as DbMedium, op: 'p256' as 'p256' | 'ed25519' | 'hmac', clients: 1, ms: 3000, out: 'vhsm.cpuprofile' });

async function main(): Promise<void> {
  const user = { name: 'prof', password: 'profile password', ctids: Array.from({ length: opts.clients }, (_, i) => 1000 + i), iterations: 1_000 };
  const server = await startBenchServer(opts.medium, [user]);
  const sessions: VhsmSession[] = [];
  for (let i = 0; i < opts.clients; i++) sessions.push(await (await server.client(1000 + i, 5000 + i)).login(user.name, user.password));
  const type: KeyTypeName = opts.op === 'p256' ? 'ec-p256' : opts.op === 'hmac' ? 'hmac' : 'ed25519';
  const key = await sessions[0]!.generateKey({ type });
  const data = randomBytes(opts.op === 'hmac' ? 1024 : 32);
  const sign = (client: number) => (opts.op === 'hmac' ? sessions[client]!.mac(key.keyId, data) : sessions[client]!.sign(key.keyId, data));
  await closedLoop(opts.clients, { warmMs: 0, ms: 500 }, sign); // warm-up, not profiled
  const inspector = new Session();
  inspector.connect();
  await inspector.post('Profiler.enable');
  await inspector.post('Profiler.setSamplingInterval', { interval: 200 });
  await inspector.post('Profiler.start');
  const measured = await closedLoop(opts.clients, { warmMs: 0, ms: opts.ms }, sign);
  const { profile } = await inspector.post('Profiler.stop');
  inspector.disconnect();
  writeFileSync(opts.out, JSON.stringify(profile));
  result('profile', { ...opts, perSecond: measured.perSecond });
  await server.close();
}

runMain('profile', main);
