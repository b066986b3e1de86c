/**
 * Benchmark section 1 (host): per operation, with 1, 2 and 16 concurrent
 * clients,
 *   (a) raw node:crypto in this process, called the way the server calls it
 *       (synchronously on the loop for P-256, Ed25519, HMAC, AES-GCM; in the
 *       libuv pool for RSA and PBKDF2), so (b)/(a) is the server's own
 *       overhead over its crypto;
 *   (b) the full VHSM path over the in-memory transport: client library →
 *       protobuf → server (fair scheduler, validation, session, key cache,
 *       crypto, audit group commit) → back, DB on disk; the same with the DB
 *       on tmpfs (fsync costs nothing there) to separate the disk from CPU;
 *       and on disk with durability 'all' (every reply waits for an fsync);
 *   (bx) the (b) server with its clients in another process
 *       (bench/remote-clients.ts over bench/lib/socket-transport.ts): every
 *       request crosses processes, as through the kernel module;
 *   (c) SoftHSM2 through PKCS#11 from a C driver (threads; processes for login);
 *   (d) the same SoftHSM2 token served by `p11-kit server` to the same driver
 *       through p11-kit-client.so: keys in another process, as in the VM's
 *       PKCS#11 comparison (issue 11), here natively; (bx)/(d) is that
 *       comparison without TCG (RSA on (d) is PKCS#1 v1.5: p11-kit 0.24's RPC
 *       does not carry PSS parameters).
 * Each (op, clients) cell runs its modes back to back, twice, interleaved
 * (a b b' b'' bx c d a b …), and keeps each mode's better sample: the machine is
 * shared, and noise only ever lowers a throughput.
 *
 *   node dist/bench/host.js '{"softhsm": {...}, "quick": false}'
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  generateKeyPairSync,
  pbkdf2,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import type { VhsmClient, VhsmSession } from '../client/index.js';
import type { KeyTypeName } from '../client/types.js';
import { closedLoop, fixedCount, options, progress, result, runMain, syncLoop, type Throughput, type Window } from './lib/measure.js';
import { startBenchServer, type BenchServer, type BenchUser, type DbMedium } from './lib/server.js';
import { JsonLineChild } from './lib/json-lines.js';
import { P11KIT_CLIENT, SoftHsm, startP11KitServer, type SoftHsmOp, type SoftHsmSetup } from './lib/softhsm.js';
import type { Durability } from '../server/group-commit.js';

export const HOST_OPS = ['p256', 'ed25519', 'rsa2048', 'hmac1k', 'aesgcm1k', 'login'] as const;
export type HostOp = (typeof HOST_OPS)[number];

const opts = options({
  softhsm: null as SoftHsmSetup | null,
  /** The (bx) column: clients in another process. */
  remote: true,
  clients: [1, 2, 16],
  ops: [...HOST_OPS] as HostOp[],
  configs: ['disk', 'tmpfs', 'strict', 'pg', 'pgStrict'] as VhsmConfigName[],
  quick: false,
  /** Overrides the measuring window (ms) of the non-login cells: longer = steadier ratios. */
  windowMs: null as number | null,
});

const WINDOW: Window = opts.windowMs ? { warmMs: 150, ms: opts.windowMs } : opts.quick ? { warmMs: 100, ms: 300 } : { warmMs: 150, ms: 600 };
/** SoftHSM's login is fast enough for a window. */
const LOGIN_WINDOW: Window = opts.quick ? { warmMs: 200, ms: 800 } : { warmMs: 300, ms: 1500 };
/** PBKDF2-600k logins (a, b) are counted instead: at least this many per cell, one per client or more. */
const LOGIN_MIN_OPS = opts.quick ? 4 : 6;
const loginsPerClient = (clients: number): number => Math.max(1, Math.ceil(LOGIN_MIN_OPS / clients));
const ROUNDS = 2;
const LOGIN_ROUNDS = 1;
const MAX_CLIENTS = Math.max(...opts.clients);
const PBKDF2_DEFAULT = 600_000;

const DATA32 = randomBytes(32);
const DATA1K = randomBytes(1024);

const BENCH_USER: BenchUser = {
  name: 'bench',
  password: 'bench password, not a secret',
  ctids: Array.from({ length: MAX_CLIENTS }, (_, i) => 1000 + i),
  iterations: 1_000,
};
const LOGIN_USER: BenchUser = {
  name: 'login600k',
  password: 'login benchmark password',
  ctids: Array.from({ length: MAX_CLIENTS }, (_, i) => 1100 + i),
  iterations: PBKDF2_DEFAULT,
};

// ---- (a) raw node:crypto ----

type RawOp = { kind: 'sync'; run: () => unknown } | { kind: 'async'; run: () => Promise<unknown> };

function rawOps(): Record<HostOp, RawOp> {
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ed25519 = generateKeyPairSync('ed25519').privateKey;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const hmacKey = createSecretKey(randomBytes(32));
  const aesKey = createSecretKey(randomBytes(32));
  // Login = PBKDF2-HMAC-SHA256 (600k, libuv pool) + AES-256-GCM open of the wrapped auth key.
  const password = Buffer.from(LOGIN_USER.password);
  const salt = randomBytes(16);
  const wrapped = wrapForLogin(password, salt);
  return {
    p256: { kind: 'sync', run: () => sign('sha256', DATA32, p256) },
    ed25519: { kind: 'sync', run: () => sign(null, DATA32, ed25519) },
    rsa2048: { kind: 'async', run: () => rsaPssSign(rsa) },
    hmac1k: { kind: 'sync', run: () => createHmac('sha256', hmacKey).update(DATA1K).digest() },
    aesgcm1k: {
      kind: 'sync',
      run: () => {
        const cipher = createCipheriv('aes-256-gcm', aesKey, randomBytes(12), { authTagLength: 16 });
        const out = [cipher.update(DATA1K), cipher.final()];
        return [out, cipher.getAuthTag()];
      },
    },
    login: { kind: 'async', run: () => rawLogin(password, salt, wrapped) },
  };
}

function rsaPssSign(key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    sign('sha256', DATA32, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, (error, signature) =>
      error ? reject(error) : resolve(signature),
    ),
  );
}

function derive(password: Buffer, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => pbkdf2(password, salt, PBKDF2_DEFAULT, 32, 'sha256', (error, key) => (error ? reject(error) : resolve(key))));
}

interface Wrapped {
  readonly nonce: Buffer;
  readonly body: Buffer;
  readonly tag: Buffer;
}

function wrapForLogin(password: Buffer, salt: Buffer): Promise<Wrapped> {
  return derive(password, salt).then((master) => {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', master, nonce);
    const body = Buffer.concat([cipher.update(randomBytes(32)), cipher.final()]);
    return { nonce, body, tag: cipher.getAuthTag() };
  });
}

async function rawLogin(password: Buffer, salt: Buffer, wrappedPromise: Promise<Wrapped>): Promise<Buffer> {
  const wrapped = await wrappedPromise;
  const master = await derive(password, salt);
  const decipher = createDecipheriv('aes-256-gcm', master, wrapped.nonce);
  decipher.setAuthTag(wrapped.tag);
  const authKey = Buffer.concat([decipher.update(wrapped.body), decipher.final()]);
  master.fill(0);
  return authKey;
}

async function measureRaw(op: RawOp, clients: number, window: Window, isLogin: boolean): Promise<Throughput> {
  // A synchronous call cannot overlap itself on one thread: the loop's count is the ceiling for any number of clients.
  if (op.kind === 'sync') return syncLoop(window, op.run);
  if (isLogin) return fixedCount(clients, loginsPerClient(clients), op.run);
  return closedLoop(clients, window, op.run);
}

// ---- (b) VHSM over the in-memory transport ----

/**
 * (b) the default server, DB on disk; (b') DB on tmpfs, where an fsync costs
 * nothing, to separate CPU from the disk; (b'') DB on disk with
 * durability 'all': every reply waits for its audit row's fsync.
 */
type VhsmConfigName = 'disk' | 'tmpfs' | 'strict' | 'pg' | 'pgStrict';
const VHSM_CONFIGS: Record<VhsmConfigName, { readonly column: string; readonly medium: DbMedium | 'postgres'; readonly durability: Durability }> = {
  disk: { column: 'b', medium: 'disk', durability: 'changes' },
  tmpfs: { column: 'bTmpfs', medium: 'tmpfs', durability: 'changes' },
  strict: { column: 'bStrict', medium: 'disk', durability: 'all' },
  // (b_pg) the same server on PostgreSQL: a throwaway cluster on a Unix socket, its data on disk (scripts/pg-cluster.sh).
  pg: { column: 'bPg', medium: 'postgres', durability: 'changes' },
  // (b_pg'') on PostgreSQL with durability 'all': every batch commits with synchronous_commit=on.
  pgStrict: { column: 'bPgStrict', medium: 'postgres', durability: 'all' },
};

/** The bench's PostgreSQL database: a cluster started for this run, stopped at exit. */
function benchDatabase(): DbMedium {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'pg-cluster.sh');
  const dir = mkdtempSync(join(tmpdir(), 'vhsm-bench-pg-'));
  const url = execFileSync('bash', [script, 'start', dir], { encoding: 'utf8' }).trim();
  process.on('exit', () => {
    execFileSync('bash', [script, 'stop', dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  });
  return url as DbMedium;
}

interface Vhsm {
  readonly config: VhsmConfigName;
  readonly server: BenchServer;
  readonly sessions: VhsmSession[];
  readonly loginClients: VhsmClient[];
  /** Key ids per op; undefined = not supported by this server. */
  readonly keys: Partial<Record<HostOp, string>>;
  readonly unsupported: Partial<Record<HostOp, string>>;
}

const KEY_TYPE_OF: Record<Exclude<HostOp, 'login'>, string> = {
  p256: 'ec-p256',
  ed25519: 'ed25519',
  rsa2048: 'rsa-2048',
  hmac1k: 'hmac',
  aesgcm1k: 'aes-256',
};

async function startVhsm(config: VhsmConfigName): Promise<Vhsm> {
  const { medium, durability } = VHSM_CONFIGS[config];
  const withSocket = config === 'disk' && opts.remote;
  const server = await startBenchServer(medium === 'postgres' ? benchDatabase() : medium, [BENCH_USER, LOGIN_USER], { durability }, withSocket);
  const sessions: VhsmSession[] = [];
  for (let i = 0; i < MAX_CLIENTS; i++) {
    const client = await server.client(1000 + i, 5000 + i);
    sessions.push(await client.login(BENCH_USER.name, BENCH_USER.password));
  }
  const loginClients: VhsmClient[] = [];
  for (let i = 0; i < MAX_CLIENTS; i++) loginClients.push(await server.client(1100 + i, 6000 + i));
  const keys: Partial<Record<HostOp, string>> = {};
  const unsupported: Partial<Record<HostOp, string>> = {};
  const vhsm: Vhsm = { config, server, sessions, loginClients, keys, unsupported };
  for (const [op, type] of Object.entries(KEY_TYPE_OF) as [Exclude<HostOp, 'login'>, string][]) {
    if (!opts.ops.includes(op)) continue;
    try {
      // Types another engineer may not have added yet are detected here, at run time.
      const key = await sessions[0]!.generateKey({ type: type as KeyTypeName });
      keys[op] = key.keyId;
      await vhsmOp(vhsm, op, 0); // the operation itself may be missing too
    } catch (error) {
      delete keys[op];
      unsupported[op] = (error as Error).message;
    }
  }
  return vhsm;
}

function vhsmOp(vhsm: Vhsm, op: HostOp, client: number): Promise<unknown> {
  const session = vhsm.sessions[client]!;
  switch (op) {
    case 'p256':
    case 'ed25519':
    case 'rsa2048':
      return session.sign(vhsm.keys[op]!, DATA32);
    case 'hmac1k':
      return session.mac(vhsm.keys[op]!, DATA1K);
    case 'aesgcm1k':
      return session.encrypt(vhsm.keys[op]!, DATA1K);
    case 'login':
      return vhsm.loginClients[client]!.login(LOGIN_USER.name, LOGIN_USER.password).then((s) => s.logout());
  }
}

// ---- (bx) VHSM clients in another process ----

/** bench/remote-clients.ts, spoken to in lines. */
class RemoteClients {
  private constructor(private readonly channel: JsonLineChild) {}

  static async start(socket: string, clients: number): Promise<RemoteClients> {
    const script = join(dirname(fileURLToPath(import.meta.url)), 'remote-clients.js');
    const config = { socket, user: BENCH_USER.name, password: BENCH_USER.password, ctidBase: BENCH_USER.ctids[0], clients };
    const remote = new RemoteClients(new JsonLineChild(spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] }), 'remote clients'));
    const ready = await remote.channel.ask(JSON.stringify(config)); // the password stays out of argv
    if (!ready.ready) throw new Error(`remote clients: ${String(ready.error)}`);
    return remote;
  }

  async run(op: 'sign' | 'mac', keyId: string, clients: number, window: Window): Promise<Throughput> {
    const answer = await this.channel.ask(`run ${op} ${keyId} ${clients} ${window.warmMs} ${window.ms}`);
    if (answer.error !== undefined) throw new Error(`remote clients: ${String(answer.error)}`);
    return { ops: Number(answer.ops), seconds: Number(answer.seconds), perSecond: Number(answer.perSecond) };
  }

  close(): Promise<void> {
    return this.channel.close();
  }
}

/** What (bx) runs for an op; undefined: not measured there. */
const REMOTE_OP: Partial<Record<HostOp, 'sign' | 'mac'>> = { p256: 'sign', ed25519: 'sign', rsa2048: 'sign', hmac1k: 'mac' };
/** What (d) runs for an op: p11-kit's RPC cannot carry the PSS parameters. */
const P11KIT_OP: Partial<Record<HostOp, SoftHsmOp>> = { p256: 'p256', ed25519: 'ed25519', rsa2048: 'rsa2048v15', hmac1k: 'hmac1k' };

// ---- the run ----

interface Sample {
  readonly perSecond: number;
  readonly ops: number;
  readonly p99?: number;
  readonly failedLogins?: number;
}

function best(samples: Sample[]): Sample | undefined {
  return samples.reduce<Sample | undefined>((a, b) => (a === undefined || b.perSecond > a.perSecond ? b : a), undefined);
}

async function main(): Promise<void> {
  progress('host: preparing keys (raw, VHSM, SoftHSM)');
  const raw = rawOps();
  const vhsms: Vhsm[] = [];
  for (const config of opts.configs) vhsms.push(await startVhsm(config));
  let softhsm: SoftHsm | undefined;
  let softKeys: Record<string, boolean> = {};
  if (opts.softhsm) ({ softhsm, keys: softKeys } = await SoftHsm.start(opts.softhsm));
  // After (c): the in-process driver made the token's keys.
  const p11kitDir = mkdtempSync(join(tmpdir(), 'vhsm-bench-p11kit-'));
  let p11kitServer: Awaited<ReturnType<typeof startP11KitServer>> | undefined;
  let p11kitMissing = opts.softhsm?.conf ? undefined : 'no SoftHSM2 token';
  if (opts.softhsm?.conf) {
    try {
      p11kitServer = await startP11KitServer(opts.softhsm.library, opts.softhsm.conf, p11kitDir, opts.softhsm.tokenLabel);
    } catch (error) {
      p11kitMissing = (error as Error).message.split('\n')[0]; // the (d) column is n/a, the rest stands
    }
  }
  const p11kit = opts.softhsm && p11kitServer
    ? (await SoftHsm.start({ binary: opts.softhsm.binary, library: P11KIT_CLIENT, tokenLabel: opts.softhsm.tokenLabel, pin: opts.softhsm.pin, env: p11kitServer.env })).softhsm
    : undefined;
  const disk = vhsms.find((v) => v.config === 'disk');
  const remote = disk?.server.socketPath ? await RemoteClients.start(disk.server.socketPath, MAX_CLIENTS) : undefined;

  result('host-setup', {
    vhsmUnsupported: vhsms[0]?.unsupported ?? {},
    softhsm: opts.softhsm ? softKeys : 'not available',
    ...(p11kitMissing ? { p11kitMissing } : {}),
    window: WINDOW,
    loginWindow: LOGIN_WINDOW,
  });

  const cells = opts.ops.length * opts.clients.length;
  let done = 0;
  for (const op of opts.ops) {
    for (const clients of opts.clients) {
      done += 1;
      const isLogin = op === 'login';
      const window = isLogin ? LOGIN_WINDOW : WINDOW;
      const rounds = isLogin ? LOGIN_ROUNDS : ROUNDS;
      const samples: Record<string, Sample[]> = { a: [] };
      const cErrors: string[] = [];
      const dErrors: string[] = [];
      for (let round = 0; round < rounds; round++) {
        progress(`host ${done}/${cells}: ${op} × ${clients} client(s), round ${round + 1}/${rounds}`);
        samples.a!.push(await measureRaw(raw[op], clients, window, isLogin));
        for (const vhsm of vhsms) {
          // Logins are PBKDF2-bound; the DB medium and durability do not matter for them.
          if (isLogin && vhsm.config !== 'disk') continue;
          if (!isLogin && vhsm.keys[op] === undefined) continue;
          const name = VHSM_CONFIGS[vhsm.config].column;
          const run = (client: number): Promise<unknown> => vhsmOp(vhsm, op, client);
          (samples[name] ??= []).push(await (isLogin ? fixedCount(clients, loginsPerClient(clients), run) : closedLoop(clients, window, run)));
        }
        const remoteOp = REMOTE_OP[op];
        const remoteKey = disk?.keys[op];
        if (remote && remoteOp && remoteKey) (samples.bx ??= []).push(await remote.run(remoteOp, remoteKey, clients, window));
        if (softhsm && (isLogin || softKeys[op])) {
          try {
            const measured = await softhsm.run(op as SoftHsmOp, clients, window);
            if (measured) (samples.c ??= []).push(measured);
          } catch (error) {
            // SoftHSM's file store sometimes fails concurrent logins outright: that cell is n/a, the rest stands.
            cErrors.push((error as Error).message);
          }
        }
        const p11kitOp = P11KIT_OP[op];
        if (p11kit && p11kitOp && dErrors.length === 0) {
          try {
            const measured = await p11kit.run(p11kitOp, clients, window);
            if (measured) (samples.d ??= []).push(measured);
          } catch (error) {
            // e.g. CKR_MECHANISM_INVALID: p11-kit 0.24's RPC does not carry CKM_EDDSA.
            dErrors.push((error as Error).message.split('\n')[0]!);
          }
        }
      }
      const a = best(samples.a!);
      const b = best(samples.b ?? []);
      const bTmpfs = best(samples.bTmpfs ?? []);
      const bStrict = best(samples.bStrict ?? []);
      const bPg = best(samples.bPg ?? []);
      const bPgStrict = best(samples.bPgStrict ?? []);
      const c = best(samples.c ?? []);
      const bx = best(samples.bx ?? []);
      const d = best(samples.d ?? []);
      result('host', {
        op,
        clients,
        a: a?.perSecond,
        b: b?.perSecond,
        bTmpfs: bTmpfs?.perSecond,
        bStrict: bStrict?.perSecond,
        bPg: bPg?.perSecond,
        bPgStrict: bPgStrict?.perSecond,
        bP99: b?.p99,
        bPgP99: bPg?.p99,
        bx: bx?.perSecond,
        c: c?.perSecond,
        d: d?.perSecond,
        ...(dErrors.length > 0 ? { dErrors } : {}),
        ratioBxD: bx && d ? bx.perSecond / d.perSecond : undefined,
        ratioBxB: bx && b ? bx.perSecond / b.perSecond : undefined,
        ...(c?.failedLogins !== undefined ? { cFailedLogins: c.failedLogins } : {}),
        ...(cErrors.length > 0 ? { cErrors } : {}),
        ratioBA: a && b ? b.perSecond / a.perSecond : undefined,
        ratioBC: b && c ? b.perSecond / c.perSecond : undefined,
        ratioTmpfsA: a && bTmpfs ? bTmpfs.perSecond / a.perSecond : undefined,
        ratioTmpfsC: c && bTmpfs ? bTmpfs.perSecond / c.perSecond : undefined,
        ratioStrictA: a && bStrict ? bStrict.perSecond / a.perSecond : undefined,
        ratioPgB: b && bPg ? bPg.perSecond / b.perSecond : undefined,
        ratioPgStrictB: b && bPgStrict ? bPgStrict.perSecond / b.perSecond : undefined,
        unsupported: vhsms[0]?.unsupported[op],
        samples: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map((s) => Math.round(s.perSecond))])),
      });
    }
  }

  await remote?.close();
  await p11kit?.close();
  p11kitServer?.stop();
  rmSync(p11kitDir, { recursive: true, force: true });
  await softhsm?.close();
  for (const vhsm of vhsms) await vhsm.server.close();
}

runMain('host', main);
