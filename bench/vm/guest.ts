/**
 * Benchmark section 2, run inside the test VM (scripts/bench.mjs boots it
 * once with vm/vm.mjs runInVm): requests through vhsm_transport.ko between
 * real processes in network namespaces.
 *
 *   1. Echo: the module loaded, test/vm/agents/echo-server in the VHSM netns
 *      answering every request with its payload — the kernel route alone
 *      (client socket → module → server socket → module → client socket).
 *   2. VHSM: the real vhsm-server binary (DB on the VM's tmpfs /tmp) and
 *      P-256 signatures through the client library.
 * Both with 1, 8 and 64 clients spread over 4 containers (one agent process
 * per container, one socket and session per client, one request at a time
 * per client). The transport's share of a signature's cost is the echo round
 * trip over the sign round trip (p50, 1 client), and the throughput ratio
 * sign / echo at each client count. Echo runs once more with all clients
 * packed into one container: whatever the module serialises across
 * containers (its locks) would show as spread / packed < 1.
 *
 *   node dist/bench/vm/guest.js '{"quick": false}'   (as root, in the VM)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { P11KIT_CLIENT, SoftHsm, startP11KitServer, type SoftHsmOp, type SoftHsmSetup } from '../lib/softhsm.js';
import { Agent } from '../../test/vm/lib/netns.js';
import { VhsmWorld } from '../../test/vm/lib/vhsm-world.js';
import { World } from '../../test/vm/lib/world.js';
import { options, progress, result, runMain } from '../lib/measure.js';

const opts = options({
  quick: false,
  clients: [1, 8, 64],
  /** Which parts run: the echo route, VHSM signatures through the client library, the PKCS#11 modules. */
  parts: ['echo', 'sign', 'pkcs11'],
  /** The PKCS#11 driver (bench/softhsm/softhsm-bench.c, compiled by scripts/bench.mjs) and libsofthsm2.so; null: no PKCS#11 part. */
  pkcs11: null as null | { driver: string; softhsm: string },
});
const WARM_MS = opts.quick ? 300 : 500;
const MS = opts.quick ? 1000 : 2000;
const CONTAINERS: Record<string, number> = { ct1: 301, ct2: 302, ct3: 303, ct4: 304 };
const NAMES = Object.keys(CONTAINERS);
const USER = { name: 'bench', password: 'bench password in the vm', ctids: Object.values(CONTAINERS) };
const MAX_CLIENTS = Math.max(...opts.clients);

/** `n` clients over 4 containers, as evenly as possible (1 → [1,0,0,0]). */
function spread(n: number): number[] {
  return NAMES.map((_, i) => Math.floor(n / NAMES.length) + (i < n % NAMES.length ? 1 : 0));
}

interface LoadResult {
  readonly clients: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
}

const PLACEMENT_ROUNDS = 3;

/** The round with the median throughput. */
function median(rounds: LoadResult[]): LoadResult {
  return [...rounds].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(rounds.length / 2)]!;
}

async function load(agents: Agent[], clients: number, keyId?: string): Promise<LoadResult> {
  const counts = spread(clients);
  const answers = await Promise.all(
    agents.map(async (agent, i) => {
      if (counts[i] === 0) return undefined;
      agent.send({ cmd: 'load', clients: counts[i], keyId, warmMs: WARM_MS, ms: MS });
      return agent.expect<{ ops: number; seconds: number; p50: number; p99: number }>('load', 120_000);
    }),
  );
  const got = answers.filter((a) => a !== undefined);
  const perSecond = got.reduce((sum, a) => sum + a.ops / a.seconds, 0);
  // Latency percentiles: the worst agent's (they run the same load).
  return { clients, perSecond, p50: Math.max(...got.map((a) => a.p50)), p99: Math.max(...got.map((a) => a.p99)) };
}

/** One agent per container, or with `inOne` all four in the first container (same processes, one netns). */
async function openAgents(world: World, kind: 'echo' | 'vhsm', inOne = false): Promise<Agent[]> {
  const perAgent = Math.max(...spread(MAX_CLIENTS));
  const agents = NAMES.map((ns) => world.agent(inOne ? NAMES[0]! : ns, 'dist/bench/vm/agent.js'));
  await Promise.all(agents.map((agent) => agent.expect('ready')));
  for (const agent of agents) agent.send({ cmd: 'open', kind, clients: perAgent, user: USER.name, password: USER.password });
  await Promise.all(agents.map((agent) => agent.expect('opened', 300_000)));
  return agents;
}

async function main(): Promise<void> {
  const echo: LoadResult[] = [];
  const echoPacked: LoadResult[] = [];
  const sign: LoadResult[] = [];

  if (opts.parts.includes('echo')) {
    progress('vm: echo server through the module');
    const world = await World.create(CONTAINERS);
    try {
      await world.echoServer();
      const agents = await openAgents(world, 'echo');
      const packedAgents = await openAgents(world, 'echo', true);
      for (const clients of opts.clients) {
        progress(`vm: echo, ${clients} client(s)`);
        if (clients === 1) {
          echo.push(await load(agents, clients));
          continue;
        }
        // Alternating rounds, so that a change in the machine's load hits both placements alike.
        const spreadRounds: LoadResult[] = [];
        const packedRounds: LoadResult[] = [];
        for (let round = 0; round < PLACEMENT_ROUNDS; round++) {
          spreadRounds.push(await load(agents, clients));
          packedRounds.push(await load(packedAgents, clients));
        }
        echo.push(median(spreadRounds));
        echoPacked.push(median(packedRounds));
      }
    } finally {
      await world.destroy();
    }
  }

  let pkcs11: Pkcs11Row[] = [];
  progress('vm: vhsm-server through the module');
  const vw = await VhsmWorld.create({ clients: CONTAINERS, users: [USER] });
  try {
    if (opts.parts.includes('sign')) {
      const agents = await openAgents(vw.world, 'vhsm');
      agents[0]!.send({ cmd: 'genkey' });
      const { keyId } = await agents[0]!.expect<{ keyId: string }>('key');
      for (const clients of opts.clients) {
        progress(`vm: P-256 sign, ${clients} client(s)`);
        sign.push(await load(agents, clients, keyId));
      }
    }
    if (opts.parts.includes('pkcs11') && opts.pkcs11) pkcs11 = await pkcs11Part(opts.pkcs11);
  } finally {
    await vw.destroy();
  }

  const one = (rows: LoadResult[]): LoadResult | undefined => rows.find((r) => r.clients === 1);
  const echo1 = one(echo);
  const sign1 = one(sign);
  result('vm', {
    windowMs: MS,
    pkcs11,
    echo,
    echoPacked,
    sign,
    nullRoundTripP50Ms: echo1?.p50,
    signRoundTripP50Ms: sign1?.p50,
    transportShareP50: echo1 && sign1 ? echo1.p50 / sign1.p50 : undefined,
    throughputRatios: opts.clients.map((clients) => {
      const e = echo.find((r) => r.clients === clients);
      const s = sign.find((r) => r.clients === clients);
      return { clients, signOverEcho: e && s ? s.perSecond / e.perSecond : undefined };
    }),
  });
}

interface Pkcs11Row {
  readonly module: 'vhsm' | 'softhsm' | 'softhsm-p11kit';
  readonly op: SoftHsmOp;
  readonly clients: number;
  /** undefined: the module (or p11-kit's RPC) lacks the mechanism. */
  readonly perSecond?: number;
  /** Every round's ops/s, sorted (perSecond is the median). */
  readonly samples?: number[];
  readonly error?: string;
}

const PKCS11_OPS: SoftHsmOp[] = ['p256', 'p256sha256', 'ed25519', 'rsa2048', 'rsa2048v15', 'hmac1k'];
/** The driver's key behind each op. */
const OP_KEY: Partial<Record<SoftHsmOp, string>> = { p256sha256: 'p256', rsa2048v15: 'rsa2048' };
const PKCS11_CLIENTS = [1, 8];
const PKCS11_ROUNDS = 3;
/**
 * Load on vhsm-server per op before its cells. Under TCG, V8's tiering takes
 * seconds of load to settle (compiled code runs slower than the interpreter
 * until then: measured, docs/benchmarks.md 2b), while the C modules need no
 * warm-up; without this the cells measured a server a few seconds old.
 */
const PKCS11_STEADY_MS = opts.quick ? 4000 : 8000;

/**
 * One C driver, three modules, the same ops: libvhsm-pkcs11.so in container
 * ct1 (through the kernel to vhsm-server), SoftHSM2 loaded in-process, and
 * the same SoftHSM2 token served from another process by `p11-kit server`
 * through p11-kit-client.so (keys isolated in another process: the class
 * of protection VHSM gives). Threads of one process, a session each.
 */
async function pkcs11Part(p11: { driver: string; softhsm: string }): Promise<Pkcs11Row[]> {
  const dir = mkdtempSync('/tmp/vhsm-bench-p11-');
  const rows: Pkcs11Row[] = [];
  let server: Awaited<ReturnType<typeof startP11KitServer>> | null = null;
  try {
    mkdirSync(join(dir, 'tokens'));
    const conf = join(dir, 'softhsm2.conf');
    writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    const pin = '12345678';
    const init = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', 'vhsm-bench', '--so-pin', '87654321', '--pin', pin], { env: { ...process.env, SOFTHSM2_CONF: conf } });
    if (init.status !== 0) throw new Error(`softhsm2-util: ${init.stderr}`);
    const vhsmConf = join(dir, 'vhsm-pkcs11.conf');
    writeFileSync(vhsmConf, `slot ${USER.name}\n`);
    server = await startP11KitServer(p11.softhsm, conf, dir, 'vhsm-bench');
    const setups: [Pkcs11Row['module'], SoftHsmSetup][] = [
      ['vhsm', { binary: p11.driver, library: join(process.cwd(), 'build/pkcs11/libvhsm-pkcs11.so'), tokenLabel: USER.name, pin: USER.password,
        prefix: ['ip', 'netns', 'exec', NAMES[0]!], env: { VHSM_PKCS11_CONF: vhsmConf } }],
      // In-process first: it makes the token's keys (p11-kit 0.24's RPC cannot generate Ed25519 keys).
      ['softhsm', { binary: p11.driver, library: p11.softhsm, conf, tokenLabel: 'vhsm-bench', pin }],
      ['softhsm-p11kit', { binary: p11.driver, library: P11KIT_CLIENT, tokenLabel: 'vhsm-bench', pin, env: server.env }],
    ];
    // All three drivers stay up; each cell runs them in turn, ROUNDS times, and keeps
    // the median: the machine is shared, and a load change then hits all three alike.
    const drivers: { module: Pkcs11Row['module']; driver: SoftHsm; keys: Record<string, boolean> }[] = [];
    try {
      for (const [module, setup] of setups) {
        progress(`vm: PKCS#11 driver on ${module}: keys`);
        const { softhsm: driver, keys } = await SoftHsm.start(setup);
        drivers.push({ module, driver, keys });
      }
      const vhsm = drivers.find((d) => d.module === 'vhsm');
      for (const op of PKCS11_OPS) {
        if (vhsm?.keys[OP_KEY[op] ?? op]) {
          progress(`vm: PKCS#11 ${op}: vhsm-server to steady state (${PKCS11_STEADY_MS / 1000} s)`);
          await vhsm.driver.run(op, Math.max(...PKCS11_CLIENTS), { warmMs: PKCS11_STEADY_MS, ms: 200 }).catch(() => undefined);
        }
        for (const clients of PKCS11_CLIENTS) {
          progress(`vm: PKCS#11 ${op}, ${clients} thread(s)`);
          const samples = new Map<string, number[]>();
          const errors = new Map<string, string>();
          for (let round = 0; round < PKCS11_ROUNDS; round++) {
            for (const { module, driver, keys } of drivers) {
              if (!keys[OP_KEY[op] ?? op]) errors.set(module, 'no key (mechanism missing)');
              if (errors.has(module)) continue;
              try {
                const r = await driver.run(op, clients, { warmMs: WARM_MS, ms: MS });
                if (r) samples.set(module, [...(samples.get(module) ?? []), r.perSecond]);
                else errors.set(module, 'unsupported');
              } catch (error) {
                // The driver reports a failed operation (e.g. CKR_MECHANISM_INVALID through p11-kit's RPC) and goes on.
                errors.set(module, String(error instanceof Error ? error.message : error).split('\n')[0]!);
              }
            }
          }
          for (const { module } of drivers) {
            const got = (samples.get(module) ?? []).sort((x, y) => x - y);
            const error = errors.get(module);
            rows.push(error || got.length === 0 ? { module, op, clients, error: error ?? 'no sample' } : { module, op, clients, perSecond: got[Math.floor(got.length / 2)]!, samples: got });
          }
        }
      }
    } finally {
      for (const { driver } of drivers) await driver.close().catch(() => undefined);
    }
  } finally {
    server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

runMain('vm', main);
