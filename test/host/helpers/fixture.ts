/**
 * Test fixture: a server on a fresh DB file in a temp directory, served over
 * the in-memory transport, with users created up front and clients stamped
 * with chosen identities.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VhsmClient } from '../../../client/index.js';
import { createUser } from '../../../server/users.js';
import { Store } from '../../../server/storage.js';
import { VhsmServer, type VhsmServerOptions } from '../../../server/server.js';
import { MemoryTransportHub } from '../../../transport/memory.js';
import type { SenderIdentity } from '../../../transport/types.js';

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
  return { ctid, netnsCookie: BigInt(ctid) * 1000n + 7n, pid: 4242, uid: 0, gid: 0, ...overrides };
}

export function tempDir(prefix = 'vhsm-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Creates a DB file with the given users. */
export async function createDatabase(path: string, users: readonly TestUser[] = [ALICE, BOB], iterations = TEST_ITERATIONS): Promise<void> {
  const store = Store.open(path, { create: true });
  try {
    for (const user of users) {
      await createUser(store, { name: user.name, password: Buffer.from(user.password), iterations, ctids: user.ctids, nowMs: Date.now() });
    }
  } finally {
    store.close();
  }
}

export interface Fixture {
  readonly dir: string;
  readonly dbPath: string;
  readonly hub: MemoryTransportHub;
  server: VhsmServer;
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
  const dbPath = join(dir, 'vhsm.db');
  const { users, userIterations, ...serverDefaults } = options;
  await createDatabase(dbPath, users ?? [ALICE, BOB], userIterations ?? TEST_ITERATIONS);
  const hub = new MemoryTransportHub();
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
    hub,
    server: await VhsmServer.open(serverOptions()),
    async client(overrides) {
      const client = await VhsmClient.connect(hub.connect(identity(overrides)), { timeoutMs: 10_000 });
      clients.push(client);
      return client;
    },
    async restart(extra) {
      await fixture.server.stop();
      fixture.server = await VhsmServer.open(serverOptions(extra));
      fixture.server.serve(hub.createServerTransport());
    },
    async close() {
      await Promise.allSettled(clients.map((client) => client.close()));
      await fixture.server.stop();
      cleanup();
    },
  };
  fixture.server.serve(hub.createServerTransport());
  return fixture;
}
