/**
 * A quick sign benchmark for comparing storage backends and builds:
 * P-256 signatures over the in-memory transport with 1, 2 and 16 clients,
 * throughput and p99, on a SQLite file (disk) or a PostgreSQL URL.
 *
 *   node dist/bench/quick-sign.js [postgres://...] [seconds]
 */
import { startBenchServer, type DbMedium } from './lib/server.js';

const location = process.argv[2] && process.argv[2] !== 'disk' ? process.argv[2] : undefined;
const seconds = Number(process.argv[3] ?? 3);
const USER = { name: 'bench', password: 'bench-password', ctids: [101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116], iterations: 1000 };

const server = await startBenchServer((location ?? 'disk') as DbMedium, [USER]);
const sessions = [];
for (let i = 0; i < 16; i++) {
  const client = await server.client(101 + i, 5000 + i);
  sessions.push(await client.login(USER.name, USER.password));
}
const key = await sessions[0]!.generateKey({ type: 'ec-p256', keyId: 'bench' });
const data = new Uint8Array(32);
for (const clients of [1, 2, 16]) {
  const latencies: number[] = [];
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    sessions.slice(0, clients).map(async (session) => {
      while (performance.now() < until) {
        const start = performance.now();
        await session.sign(key.keyId, data);
        latencies.push(performance.now() - start);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0;
  console.log(JSON.stringify({ backend: location ? 'postgres' : 'sqlite', clients, opsPerSec: Math.round(latencies.length / seconds), p99Ms: Number(p99.toFixed(3)) }));
}
await server.close();
