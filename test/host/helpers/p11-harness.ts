/**
 * Host harness for the PKCS#11 module's TEST build (libvhsm-pkcs11-test.so,
 * pkcs11/test/transport_unix.c): the real server code over the in-memory
 * transport, reachable on a Unix socket. Every connection is stamped with
 * the same identity (one "process" in CTID 101), so the module's pooled
 * connections share its VHSM login as they do over the kernel. The shipped
 * module cannot reach this: it has no transport but the kernel's.
 *
 * Frames: request = u32 LE length + payload; reply = u32 LE status (errno) +
 * u32 LE length + payload.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { startFixture, type Fixture, type FixtureOptions, type TestUser } from './fixture.js';
import { TransportError } from '../../../transport/types.js';

const ERRNO: Record<string, number> = {
  EACCES: 13, EAGAIN: 11, EMSGSIZE: 90, ENOBUFS: 105, ECONNREFUSED: 111, ETIMEDOUT: 110, ECONNRESET: 104,
};

export interface P11Harness {
  readonly fixture: Fixture;
  readonly socketPath: string;
  /** Environment for a process that loads the test module. */
  env(conf: string): Record<string, string>;
  /** Stops answering: new connections are refused (ECONNREFUSED) as with no server. */
  stopServer(): Promise<void>;
  close(): Promise<void>;
}

function serve(fixture: Fixture, socket: Socket): void {
  let pending = Buffer.alloc(0);
  let chain = Promise.resolve();
  const transportP = fixture.connect({ ctid: 101 });
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const len = pending.readUInt32LE(0);
      if (pending.length < 4 + len) break;
      const payload = pending.subarray(4, 4 + len);
      pending = pending.subarray(4 + len);
      chain = chain.then(async () => {
        const head = Buffer.alloc(8);
        let body = Buffer.alloc(0);
        try {
          body = Buffer.from(await (await transportP).request(payload, { timeoutMs: 30_000 }));
        } catch (error) {
          head.writeUInt32LE(error instanceof TransportError ? (ERRNO[error.code] ?? 5) : 5, 0);
        }
        head.writeUInt32LE(body.length, 4);
        if (!socket.destroyed) socket.write(Buffer.concat([head, body]));
      });
    }
  });
  socket.on('error', () => undefined);
}

export async function startP11Harness(users?: readonly TestUser[], options: Omit<FixtureOptions, 'users'> = {}): Promise<P11Harness> {
  const fixture = await startFixture(users ? { ...options, users } : options);
  const socketPath = join(fixture.dir, 'p11.sock');
  const sockets = new Set<Socket>();
  let server: Server | null = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serve(fixture, socket);
  });
  await new Promise<void>((resolve) => server!.listen(socketPath, resolve));
  const stop = async (): Promise<void> => {
    if (!server) return;
    const s = server;
    server = null;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  return {
    fixture,
    socketPath,
    env: (conf) => ({ VHSM_PKCS11_TEST_SOCKET: socketPath, VHSM_PKCS11_CONF: conf }),
    stopServer: stop,
    async close() {
      await stop();
      await fixture.close();
    },
  };
}
