/**
 * Two servers on one PostgreSQL database (issue 12): do they wait for each
 * other? One server process with 16 clients, then two server processes
 * (their own audit chains, as on two hosts) with 8 clients each, all
 * signing with the SAME key (the worst case: both merge use counts into
 * one `keys` row). Meanwhile a monitor connection samples
 * pg_stat_activity every millisecond: the share of the servers' busy
 * backend samples spent waiting on a heavyweight lock (row or
 * transaction locks: what would serialise them) is the lock-wait share.
 * On this 2-core machine the combined throughput cannot scale; the point
 * is that the storage does not make them queue on each other.
 *
 *   node dist/bench/pg-locks.js '{"quick": true}'
 *   (worker: node dist/bench/pg-locks.js '{"worker": {...}}', one server and its clients)
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { VhsmClient, type VhsmSession } from '../client/index.js';
import { openAdminStore } from '../server/admin-store.js';
import { VhsmServer } from '../server/server.js';
import { MemoryTransportHub } from '../transport/memory.js';
import { closedLoop, options, progress, result, runMain } from './lib/measure.js';
import { identity } from './lib/server.js';

interface WorkerSpec {
  readonly url: string;
  readonly serverId: string;
  readonly clients: number;
  readonly firstCtid: number;
  readonly keyId: string;
  /** Wall-clock time (ms) to start the measured window, so that the processes overlap exactly. */
  readonly startAt: number;
  readonly ms: number;
}

const opts = options({ quick: false, worker: null as WorkerSpec | null });
const MS = opts.quick ? 2000 : 4000;
const USER = { name: 'locks', password: 'two servers one database', iterations: 1_000 };
const CTIDS = Array.from({ length: 16 }, (_, i) => 2000 + i);
const DATA = Buffer.alloc(32, 7);

/** One server with its clients; prints its throughput as one JSON line. */
async function worker(spec: WorkerSpec): Promise<void> {
  const hub = new MemoryTransportHub();
  const server = await VhsmServer.open({ storagePath: spec.url, serverId: spec.serverId, pbkdf2Iterations: USER.iterations });
  server.serve(hub.createServerTransport());
  const sessions: VhsmSession[] = [];
  for (let i = 0; i < spec.clients; i++) {
    const client = await VhsmClient.connect(hub.connect(identity(spec.firstCtid + i, 7000 + i)), { timeoutMs: 60_000 });
    sessions.push(await client.login(USER.name, USER.password));
  }
  await closedLoop(spec.clients, { warmMs: 0, ms: 300 }, (c) => sessions[c]!.sign(spec.keyId, DATA)); // key held, statements prepared
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, spec.startAt - Date.now())));
  const measured = await closedLoop(spec.clients, { warmMs: 0, ms: spec.ms }, (c) => sessions[c]!.sign(spec.keyId, DATA));
  process.stdout.write(`${JSON.stringify({ serverId: spec.serverId, perSecond: measured.perSecond, p99: measured.p99 })}\n`);
  await server.stop();
}

function runWorker(spec: WorkerSpec): Promise<{ serverId: string; perSecond: number; p99: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), JSON.stringify({ worker: spec })], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) reject(new Error(`worker ${spec.serverId} exited ${code}`));
      else resolve(JSON.parse(line) as { serverId: string; perSecond: number; p99: number });
    });
  });
}

interface WaitSamples {
  busy: number;
  lock: number;
  lwlock: number;
  io: number;
  samples: number;
}

/** Samples the servers' backends until `stop` is set. */
async function sampleWaits(url: string, until: () => boolean): Promise<WaitSamples> {
  const monitor = new pg.Client({ connectionString: url, application_name: 'vhsm-bench-monitor' });
  await monitor.connect();
  const waits: WaitSamples = { busy: 0, lock: 0, lwlock: 0, io: 0, samples: 0 };
  try {
    while (!until()) {
      const { rows } = await monitor.query<{ busy: number; lock: number; lwlock: number; io: number }>(
        `SELECT count(*) FILTER (WHERE state = 'active')::int AS busy,
                count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock')::int AS lock,
                count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'LWLock')::int AS lwlock,
                count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'IO')::int AS io
         FROM pg_stat_activity WHERE application_name = 'vhsm'`,
      );
      const row = rows[0]!;
      waits.busy += row.busy;
      waits.lock += row.lock;
      waits.lwlock += row.lwlock;
      waits.io += row.io;
      waits.samples += 1;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  } finally {
    await monitor.end();
  }
  return waits;
}

async function scenario(url: string, keyId: string, servers: number): Promise<Record<string, unknown>> {
  const perServer = CTIDS.length / servers;
  const startAt = Date.now() + 3000; // past every worker's start-up and warm-up
  let done = false;
  const workers = Array.from({ length: servers }, (_, i) =>
    runWorker({ url, serverId: `bench-${servers}-${i}`, clients: perServer, firstCtid: CTIDS[i * perServer]!, keyId, startAt, ms: MS }),
  );
  await new Promise((resolve) => setTimeout(resolve, startAt - Date.now()));
  const waits = sampleWaits(url, () => done);
  const measured = await Promise.all(workers);
  done = true;
  const w = await waits;
  return {
    servers,
    clientsPerServer: perServer,
    perSecond: measured.map((m) => Math.round(m.perSecond)),
    combinedPerSecond: Math.round(measured.reduce((sum, m) => sum + m.perSecond, 0)),
    p99: measured.map((m) => m.p99),
    samples: w.samples,
    busyBackends: w.samples ? w.busy / w.samples : 0,
    lockWaitShare: w.busy ? w.lock / w.busy : 0,
    lwlockWaitShare: w.busy ? w.lwlock / w.busy : 0,
    ioWaitShare: w.busy ? w.io / w.busy : 0,
  };
}

async function main(): Promise<void> {
  if (opts.worker) return worker(opts.worker);
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'pg-cluster.sh');
  const dir = mkdtempSync(join(tmpdir(), 'vhsm-bench-pglocks-'));
  const url = execFileSync('bash', [script, 'start', dir], { encoding: 'utf8' }).trim();
  try {
    progress('pg-locks: database and key');
    const admin = await openAdminStore(url, { create: true });
    await admin.createUser({ name: USER.name, password: Buffer.from(USER.password), iterations: USER.iterations, ctids: CTIDS, nowMs: Date.now() });
    await admin.close();
    const hub = new MemoryTransportHub();
    const server = await VhsmServer.open({ storagePath: url, serverId: 'bench-setup', pbkdf2Iterations: USER.iterations });
    server.serve(hub.createServerTransport());
    const client = await VhsmClient.connect(hub.connect(identity(CTIDS[0]!, 9000)));
    const key = await (await client.login(USER.name, USER.password)).generateKey({ type: 'ec-p256', keyId: 'shared' });
    await client.close();
    await server.stop();
    for (const servers of [1, 2, 1, 2]) {
      progress(`pg-locks: ${servers} server process(es), 16 clients in all, one key`);
      result('pg-locks', await scenario(url, key.keyId, servers));
    }
  } finally {
    execFileSync('bash', [script, 'stop', dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

runMain('pg-locks', main);
