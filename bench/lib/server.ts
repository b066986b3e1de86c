/**
 * A VHSM server for the host benchmarks: a fresh DB file (on disk, or on
 * tmpfs to see what the audit's fsync costs), users created up front, the
 * in-memory transport, and clients stamped with chosen identities — the
 * same wiring as test/host/helpers/fixture.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VhsmClient } from '../../client/index.js';
import { VhsmServer, type VhsmServerOptions } from '../../server/server.js';
import { openAdminStore } from '../../server/admin-store.js';
import { isPostgresUrl } from '../../server/pg/store.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import type { ClientTransport, SenderIdentity } from '../../transport/types.js';
import { mergeServerTransports, SocketServerTransport } from './socket-transport.js';

export interface BenchUser {
  readonly name: string;
  readonly password: string;
  readonly ctids: readonly number[];
  readonly iterations: number;
}

/**
 * Where the DB lives: 'disk' = the OS temp dir (ext4 here), 'tmpfs' = /dev/shm
 * (fsync is free), or a postgres:// URL of an empty database.
 */
export type DbMedium = 'disk' | 'tmpfs' | `postgres://${string}`;

export interface BenchServer {
  readonly hub: MemoryTransportHub;
  readonly server: VhsmServer;
  readonly dbPath: string;
  /** Where clients in another process connect (bench/lib/socket-transport.ts), if asked for. */
  readonly socketPath: string | undefined;
  /** A raw transport stamped as (ctid, pid). */
  transport(ctid: number, pid?: number): ClientTransport;
  client(ctid: number, pid?: number): Promise<VhsmClient>;
  close(): Promise<void>;
}

export function identity(ctid: number, pid = 4242): SenderIdentity {
  return { ctid, netnsCookie: BigInt(ctid) * 1000n + 7n, pid, procStart: BigInt(pid) * 1_000_003n, uid: 0, gid: 0 };
}

export async function startBenchServer(
  medium: DbMedium,
  users: readonly BenchUser[],
  options: Partial<Omit<VhsmServerOptions, 'storagePath'>> = {},
  /** Also serve clients of other processes over a Unix socket (the host's stand-in for the kernel hop). */
  withSocket = false,
): Promise<BenchServer> {
  const dir = mkdtempSync(join(medium === 'tmpfs' ? '/dev/shm' : tmpdir(), 'vhsm-bench-'));
  const dbPath = isPostgresUrl(medium) ? medium : join(dir, 'vhsm.db');
  const store = await openAdminStore(dbPath, { create: true });
  try {
    for (const user of users) {
      await store.createUser({ name: user.name, password: Buffer.from(user.password), iterations: user.iterations, ctids: [...user.ctids], nowMs: Date.now() });
    }
  } finally {
    await store.close();
  }
  const hub = new MemoryTransportHub();
  const server = await VhsmServer.open({ ...options, storagePath: dbPath });
  const socketPath = withSocket ? join(dir, 'bench.sock') : undefined;
  const socket = socketPath === undefined ? undefined : await SocketServerTransport.listen(socketPath, identity);
  server.serve(socket ? mergeServerTransports(hub.createServerTransport(), socket) : hub.createServerTransport());
  const clients: VhsmClient[] = [];
  return {
    hub,
    server,
    dbPath,
    socketPath,
    transport: (ctid, pid) => hub.connect(identity(ctid, pid)),
    async client(ctid, pid) {
      const client = await VhsmClient.connect(hub.connect(identity(ctid, pid)), { timeoutMs: 120_000 });
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.allSettled(clients.map((client) => client.close()));
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
