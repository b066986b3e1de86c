/**
 * VHSM clients in their own process for benchmark section 1's (bx) column:
 * the client library over bench/lib/socket-transport.ts to a server in the
 * bench's process, so that each request crosses processes as it does
 * through the kernel module and as p11-kit's RPC does ((d) column).
 *
 * Started by bench/host.ts; reads its options as the first line on stdin (a
 * JSON object: the password stays out of argv), logs every client in once,
 * then answers one JSON line per command read from stdin:
 *   run OP KEY_ID CLIENTS WARM_MS MS   (OP: sign | mac)  → {"ops","seconds","perSecond"}
 *   quit
 */
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { VhsmClient, type VhsmSession } from '../client/index.js';
import { closedLoop } from './lib/measure.js';
import { connectSocketTransport } from './lib/socket-transport.js';

interface RemoteOptions {
  readonly socket: string;
  readonly user: string;
  readonly password: string;
  readonly ctidBase: number;
  readonly pidBase: number;
  readonly clients: number;
}

const DATA32 = randomBytes(32);
const DATA1K = randomBytes(1024);

function say(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) return;
  const opts = { pidBase: 7000, ...(JSON.parse(first.value) as Omit<RemoteOptions, 'pidBase'> & Partial<RemoteOptions>) };
  const sessions: VhsmSession[] = [];
  for (let i = 0; i < opts.clients; i++) {
    const transport = await connectSocketTransport(opts.socket, opts.ctidBase + i, opts.pidBase + i);
    const client = await VhsmClient.connect(transport, { timeoutMs: 120_000 });
    sessions.push(await client.login(opts.user, opts.password));
  }
  say({ ready: true });
  for (let next = await lines.next(); !next.done; next = await lines.next()) {
    const line = next.value;
    const [command, op, keyId, clients, warmMs, ms] = line.trim().split(/\s+/);
    if (command === 'quit') break;
    if (command !== 'run' || !keyId || (op !== 'sign' && op !== 'mac')) {
      say({ error: `unknown command: ${line}` });
      continue;
    }
    const count = Math.min(Number(clients), sessions.length);
    const run = (i: number): Promise<unknown> => (op === 'mac' ? sessions[i]!.mac(keyId, DATA1K) : sessions[i]!.sign(keyId, DATA32));
    try {
      const measured = await closedLoop(count, { warmMs: Number(warmMs), ms: Number(ms) }, run);
      say({ ops: measured.ops, seconds: measured.seconds, perSecond: measured.perSecond });
    } catch (error) {
      say({ error: (error as Error).message });
    }
  }
  process.exit(0);
}

main().catch((error: unknown) => {
  say({ error: (error as Error).message });
  process.exit(1);
});
