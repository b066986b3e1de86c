/**
 * The benchmark's cross-process stand-in for the kernel hop
 * (bench/lib/socket-transport.ts): the (bx) column of `npm run bench` is
 * only as honest as these properties — each client's requests carry its own
 * hello identity, replies reach the request they answer even out of order,
 * and a merged transport routes every reply back to the side it came from.
 * Also the whole server behind it: a login and a MAC from another process's
 * point of view (here another socket).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { connectSocketTransport, mergeServerTransports, SocketServerTransport } from '../../bench/lib/socket-transport.js';
import { identity as benchIdentity, startBenchServer } from '../../bench/lib/server.js';
import { VhsmClient } from '../../client/index.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import type { StampedRequest } from '../../transport/types.js';
import { identity } from './helpers/fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'vhsm-bench-socket-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('identities from the hello, replies matched by tag even out of order', async (t) => {
  const server = await SocketServerTransport.listen(join(dir, 'a.sock'), benchIdentity);
  const seen: StampedRequest[] = [];
  server.listen((request) => {
    seen.push(request);
    if (seen.length === 3) {
      // Answer in reverse order: each reply must still reach its own request.
      for (const r of [...seen].reverse()) void server.reply(r.requestId, Uint8Array.of(r.sender.ctid & 0xff, ...r.payload));
    }
  });
  const one = await connectSocketTransport(join(dir, 'a.sock'), 301, 11);
  const two = await connectSocketTransport(join(dir, 'a.sock'), 302, 22);
  const replies = await Promise.all([one.request(Uint8Array.of(1)), one.request(Uint8Array.of(2)), two.request(Uint8Array.of(3))]);
  t.same(replies.map((r) => [...r]), [[45, 1], [45, 2], [46, 3]], 'each reply answers its own request (301 & 0xff = 45)');
  t.same(
    seen.map((r) => [r.sender.ctid, r.sender.pid]).sort(),
    [[301, 11], [301, 11], [302, 22]],
    'requests stamped with their connection\'s hello',
  );
  t.equal(new Set(seen.map((r) => r.requestId)).size, 3, 'distinct request ids');
  await one.close();
  await two.close();
  await server.close();
});

t.test('a merged transport sends each reply back where its request came from', async (t) => {
  const hub = new MemoryTransportHub();
  const socket = await SocketServerTransport.listen(join(dir, 'b.sock'), benchIdentity);
  const merged = mergeServerTransports(hub.createServerTransport(), socket);
  merged.listen((request) => void merged.reply(request.requestId, Uint8Array.of(request.sender.ctid & 0xff)));
  const local = hub.connect(identity({ ctid: 7 }));
  const remote = await connectSocketTransport(join(dir, 'b.sock'), 8, 1);
  // Same inner request id (1) on both sides: the merge must keep them apart.
  const [fromLocal, fromRemote] = await Promise.all([local.request(Uint8Array.of(0)), remote.request(Uint8Array.of(0))]);
  t.same([...fromLocal], [7], 'in-memory client answered');
  t.same([...fromRemote], [8], 'socket client answered');
  await remote.close();
  await merged.close();
});

t.test('the bench server answers a client on its socket', async (t) => {
  const user = { name: 'sock', password: 'socket bench password', ctids: [401], iterations: 1_000 };
  const bench = await startBenchServer('disk', [user], {}, true);
  t.teardown(() => bench.close());
  const creator = await (await bench.client(401, 1)).login(user.name, user.password);
  const key = await creator.generateKey({ type: 'hmac' });
  const client = await VhsmClient.connect(await connectSocketTransport(bench.socketPath!, 401, 2), { timeoutMs: 10_000 });
  const session = await client.login(user.name, user.password);
  const data = Buffer.from('measured across processes');
  const mac = await session.mac(key.keyId, data);
  t.same(mac, await creator.mac(key.keyId, data), 'the same MAC through the socket as in memory');
  await client.close();
});
