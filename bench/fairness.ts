/**
 * Benchmark section 3 (host, in-memory transport, DB on disk, default
 * PBKDF2 of 600,000 iterations): latency of one container's P-256
 * signatures (one client, one request at a time, through the client
 * library) while
 *   - quiet: nothing else runs (measured before and after the loads; the
 *     lower p99 is the reference, which makes the ratios conservative);
 *   - flood: another container keeps 256 sign requests outstanding (the
 *     module's default per-container quota, max_pending_per_ct) from a
 *     client that replays one pre-encoded request;
 *   - logins: 4 other containers log in and out in a loop (600k PBKDF2 each,
 *     in the server's KDF lane on the libuv pool).
 * Reports p50/p90/p99 per phase and loaded p99 / quiet p99. Options choose
 * the DB medium and override the server's fairness knobs
 * (maxInFlightPerContainer, maxConcurrentKdf) to show what they change.
 *
 *   node dist/bench/fairness.js '{"quick": false}'
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { VhsmClient } from '../client/index.js';
import { Latencies, options, progress, result, round3, runMain, sleep, type LatencySummary } from './lib/measure.js';
import { flood, rawLogin, signRequest } from './lib/raw-client.js';
import type { Durability } from '../server/group-commit.js';
import { startBenchServer, type BenchUser, type DbMedium } from './lib/server.js';

const opts = options({
  quick: false,
  floodInFlight: 256,
  logins: 4,
  maxInFlightPerContainer: 0,
  maxInFlightPerContainerShared: 0,
  maxConcurrentKdf: 0,
  durability: 'changes' as Durability,
  medium: 'disk' as DbMedium,
  label: 'default',
});
const PHASE_MS = opts.quick ? 1500 : 3000;
const RAMP_MS = 300;

const VICTIM_CTID = 2001;
const FLOOD_CTID = 2002;
const LOGIN_CTIDS = Array.from({ length: opts.logins }, (_, i) => 2101 + i);

const SIGNER: BenchUser = { name: 'signer', password: 'signer password', ctids: [VICTIM_CTID, FLOOD_CTID], iterations: 1_000 };
const LOGIN_USER: BenchUser = { name: 'login600k', password: 'login benchmark password', ctids: LOGIN_CTIDS, iterations: 600_000 };

async function main(): Promise<void> {
  progress(`fairness (${opts.label}): starting the server (DB on ${opts.medium}, PBKDF2 600k)`);
  const server = await startBenchServer(opts.medium, [SIGNER, LOGIN_USER], {
    durability: opts.durability,
    fairness: {
      ...(opts.maxInFlightPerContainer ? { maxInFlightPerContainer: opts.maxInFlightPerContainer } : {}),
      ...(opts.maxInFlightPerContainerShared ? { maxInFlightPerContainerShared: opts.maxInFlightPerContainerShared } : {}),
    },
    ...(opts.maxConcurrentKdf ? { maxConcurrentKdf: opts.maxConcurrentKdf } : {}),
  });
  const victimClient = await server.client(VICTIM_CTID, 100);
  const victim = await victimClient.login(SIGNER.name, SIGNER.password);
  const key = await victim.generateKey({ type: 'ec-p256' });
  const data = randomBytes(32);

  const measureVictim = async (phase: string): Promise<LatencySummary & { perSecond: number }> => {
    progress(`fairness (${opts.label}): victim latency, ${phase}`);
    const latencies = new Latencies();
    const start = performance.now();
    const end = start + PHASE_MS;
    while (performance.now() < end) {
      const t0 = performance.now();
      await victim.sign(key.keyId, data);
      latencies.add(performance.now() - t0);
    }
    return { ...latencies.summary(), perSecond: round3(latencies.count / ((performance.now() - start) / 1000)) };
  };

  // Warm-up: caches, JIT.
  for (let i = 0; i < 200; i++) await victim.sign(key.keyId, data);
  const quietBefore = await measureVictim('quiet');

  // Flood from another container.
  const floodTransport = server.transport(FLOOD_CTID, 200);
  const floodSession = await rawLogin(floodTransport, SIGNER.name, SIGNER.password);
  const flooder = flood(floodTransport, signRequest(floodSession, key.keyId, data), opts.floodInFlight);
  await sleep(RAMP_MS);
  const floodStart = flooder.replies;
  const floodT0 = performance.now();
  const underFlood = await measureVictim(`while another container keeps ${opts.floodInFlight} signatures outstanding`);
  const floodRate = (flooder.replies - floodStart) / ((performance.now() - floodT0) / 1000);
  await flooder.stop();

  // Logins in 4 other containers.
  const loginClients: VhsmClient[] = [];
  for (const ctid of LOGIN_CTIDS) loginClients.push(await server.client(ctid, 300));
  let stopping = false;
  let logins = 0;
  const loginLoops = loginClients.map(async (client) => {
    while (!stopping) {
      const session = await client.login(LOGIN_USER.name, LOGIN_USER.password);
      await session.logout();
      logins += 1;
    }
  });
  await sleep(RAMP_MS);
  const loginsBefore = logins;
  const loginT0 = performance.now();
  const underLogins = await measureVictim(`while ${opts.logins} containers log in (PBKDF2 600k)`);
  const loginRate = (logins - loginsBefore) / ((performance.now() - loginT0) / 1000);
  stopping = true;
  await Promise.all(loginLoops);

  const quietAfter = await measureVictim('quiet again');
  const quietP99 = Math.min(quietBefore.p99, quietAfter.p99);
  result('fairness', {
    label: opts.label,
    medium: opts.medium,
    maxInFlightPerContainer: opts.maxInFlightPerContainer || 'default',
    maxInFlightPerContainerShared: opts.maxInFlightPerContainerShared || 'default',
    maxConcurrentKdf: opts.maxConcurrentKdf || 'default',
    durability: opts.durability,
    phaseMs: PHASE_MS,
    quietBefore,
    quietAfter,
    quietP99,
    flood: { ...underFlood, inFlight: opts.floodInFlight, flooderPerSecond: Math.round(floodRate), flooderErrors: flooder.errors },
    logins: { ...underLogins, containers: opts.logins, loginsPerSecond: round3(loginRate) },
    ratioFloodP99: underFlood.p99 / quietP99,
    ratioLoginsP99: underLogins.p99 / quietP99,
    ratioFloodP50: underFlood.p50 / Math.min(quietBefore.p50, quietAfter.p50),
    ratioLoginsP50: underLogins.p50 / Math.min(quietBefore.p50, quietAfter.p50),
  });
  await server.close();
}

runMain('fairness', main);
