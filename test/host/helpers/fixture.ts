/**
 * Test fixture: a server on a fresh DB file in a temp directory, served over
 * the in-memory transport, with users created up front and clients stamped
 * with chosen identities.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VhsmClient } from '../../../client/index.js';
import { openAdminStore } from '../../../server/admin-store.js';
import { VhsmServer, type VhsmServerOptions } from '../../../server/server.js';
import { MemoryTransportHub } from '../../../transport/memory.js';
import type { ClientTransport, SenderIdentity, ServerTransport } from '../../../transport/types.js';
import { freshPgDatabase } from './pg.js';

/**
 * Which storage fixtures use: 'sqlite' (default), or 'postgres' when
 * VHSM_TEST_BACKEND=postgres (the test runner's second pass of the server
 * suites): a fresh database on the test cluster per fixture.
 */
export type TestBackend = 'sqlite' | 'postgres';
export function testBackend(): TestBackend {
  return process.env.VHSM_TEST_BACKEND === 'postgres' ? 'postgres' : 'sqlite';
}

/** A fresh, empty store location for this process's backend: a file path in `dir`, or a new database's URL. */
export async function freshStoreLocation(dir: string, backend: TestBackend = testBackend()): Promise<{ location: string; drop(): Promise<void> }> {
  if (backend === 'sqlite') return { location: join(dir, 'vhsm.db'), drop: async () => undefined };
  const db = await freshPgDatabase();
  return { location: db.url, drop: () => db.drop() };
}

/**
 * Where fixtures get their transports. On the host: the in-memory hub, which
 * stamps any identity we ask for. In the VM (VHSM_TEST_TRANSPORT=netlink, see
 * test/vm/lib/kernel-transports.ts): the real module, which stamps what is
 * true — the CTID of the netns a socket lives in, and this process's PID, so
 * `pid`, `uid` and `netnsCookie` overrides cannot be honoured there.
 */
export interface TestTransports {
  readonly kind: 'memory' | 'netlink';
  server(): Promise<ServerTransport>;
  client(identity: SenderIdentity): Promise<ClientTransport>;
  /** Per-call deadline for the fixture's clients; default 10 s. Under emulation (the VM) RSA keygen can take longer. */
  readonly clientTimeoutMs?: number;
}

export function memoryTransports(hub = new MemoryTransportHub()): TestTransports & { readonly hub: MemoryTransportHub } {
  return {
    kind: 'memory',
    hub,
    server: async () => hub.createServerTransport(),
    client: async (who) => hub.connect(who),
  };
}

let transportsOverride: TestTransports | undefined;
/** Makes every fixture of this process use `transports` (the VM wrappers call this). */
export function useTransports(transports: TestTransports): void {
  transportsOverride = transports;
}

/** True when connections can carry any PID/cookie (memory), false over the real module. */
export function identitiesAreFree(): boolean {
  return transportsOverride === undefined || transportsOverride.kind === 'memory';
}

/** Small PBKDF2 count so tests run fast; one test checks the real default. */
export const TEST_ITERATIONS = 1_000;

export interface TestUser {
  readonly name: string;
  readonly password: string;
  readonly ctids: readonly number[];
}

export const ALICE: TestUser = { name: 'alice', password: 'correct horse battery staple', ctids: [101] };
export const BOB: TestUser = { name: 'bob', password: 'hunter2-but-longer', ctids: [102] };

export function identity(overrides: Partial<SenderIdentity> = {}): SenderIdentity {
  const ctid = overrides.ctid ?? 101;
  return { ctid, netnsCookie: BigInt(ctid) * 1000n + 7n, pid: 4242, procStart: 1_000_000_007n, uid: 0, gid: 0, ...overrides };
}

export function tempDir(prefix = 'vhsm-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Creates a store (a SQLite file, or the schema in a PostgreSQL database) with the given users. */
export async function createDatabase(location: string, users: readonly TestUser[] = [ALICE, BOB], iterations = TEST_ITERATIONS): Promise<void> {
  const store = await openAdminStore(location, { create: true });
  try {
    for (const user of users) {
      await store.createUser({ name: user.name, password: Buffer.from(user.password), iterations, ctids: user.ctids, nowMs: Date.now() });
    }
  } finally {
    await store.close();
  }
}

export interface Fixture {
  readonly dir: string;
  /** The store: a SQLite file, or a postgres:// URL (testBackend()). */
  readonly dbPath: string;
  readonly backend: TestBackend;
  readonly hub: MemoryTransportHub;
  readonly transports: TestTransports;
  server: VhsmServer;
  /** A raw transport stamped with `identity(overrides)` (over the kernel: only the CTID counts). */
  connect(overrides?: Partial<SenderIdentity>): Promise<ClientTransport>;
  /** A client stamped with `identity(overrides)`. */
  client(overrides?: Partial<SenderIdentity>): Promise<VhsmClient>;
  /** Stops the server and starts a new one on the same DB. */
  restart(options?: Partial<VhsmServerOptions>): Promise<void>;
  close(): Promise<void>;
}

export interface FixtureOptions extends Partial<VhsmServerOptions> {
  readonly users?: readonly TestUser[];
  /** PBKDF2 iterations for the users created up front. */
  readonly userIterations?: number;
}

export async function startFixture(options: FixtureOptions = {}): Promise<Fixture> {
  const { dir, cleanup } = tempDir();
  const backend = testBackend();
  const { location: dbPath, drop } = await freshStoreLocation(dir, backend);
  const { users, userIterations, ...serverDefaults } = options;
  await createDatabase(dbPath, users ?? [ALICE, BOB], userIterations ?? TEST_ITERATIONS);
  const hub = new MemoryTransportHub();
  const transports = transportsOverride ?? memoryTransports(hub);
  const serverOptions = (extra: Partial<VhsmServerOptions> = {}): VhsmServerOptions => ({
    pbkdf2Iterations: TEST_ITERATIONS,
    ...serverDefaults,
    ...extra,
    storagePath: dbPath,
  });
  const clients: VhsmClient[] = [];
  const fixture: Fixture = {
    dir,
    dbPath,
    backend,
    hub,
    transports,
    server: await VhsmServer.open(serverOptions()),
    connect: (overrides) => transports.client(identity(overrides)),
    async client(overrides) {
      const client = await VhsmClient.connect(await transports.client(identity(overrides)), { timeoutMs: transports.clientTimeoutMs ?? 10_000 });
      clients.push(client);
      return client;
    },
    async restart(extra) {
      await fixture.server.stop();
      fixture.server = await VhsmServer.open(serverOptions(extra));
      fixture.server.serve(await transports.server());
    },
    async close() {
      await Promise.allSettled(clients.map((client) => client.close()));
      await fixture.server.stop();
      await drop();
      cleanup();
    },
  };
  fixture.server.serve(await transports.server());
  return fixture;
}

/**
 * A server on a fresh DB with alice, serving through `wrap(inner)` — a
 * wrapper around an in-memory server transport, for tests that watch the
 * very buffers passing through — and a client stamped with `identity()`.
 * Both are closed at teardown.
 */
export async function serveWrapped(
  t: { teardown(fn: () => unknown): void },
  wrap: (inner: ServerTransport) => ServerTransport,
): Promise<{ client: VhsmClient; dbPath: string }> {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const { location: dbPath, drop } = await freshStoreLocation(dir);
  await createDatabase(dbPath, [ALICE]);
  const hub = new MemoryTransportHub();
  const server = await VhsmServer.open({ storagePath: dbPath, pbkdf2Iterations: TEST_ITERATIONS });
  server.serve(wrap(hub.createServerTransport()));
  t.teardown(async () => {
    await server.stop();
    await drop();
  });
  const client = await VhsmClient.connect(hub.connect(identity()));
  t.teardown(() => client.close());
  return { client, dbPath };
}
