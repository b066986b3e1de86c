/**
 * A load client inside one container (network namespace) of the benchmark
 * VM. JSON-line commands on stdin, answers on stdout:
 *   {cmd:"open", kind:"echo"|"vhsm", clients, user?, password?}
 *       opens `clients` sockets through vhsm_transport.ko (each its own
 *       netlink socket; for vhsm each logs in: its own session)
 *   {cmd:"genkey", type}            generates a key with the first session → {type:"key", keyId}
 *   {cmd:"load", clients, keyId?, warmMs, ms}
 *       the first `clients` sockets in closed loops: echo = a 96-byte null
 *       request (about the size of a sign request), vhsm = a P-256 signature
 *       over 32 bytes; → {type:"load", ops, seconds, p50, p99}
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { VhsmClient, type VhsmSession } from '../../client/index.js';
import { emit, onCommand } from '../../test/vm/agents/io.js';
import { openNetlinkClient } from '../../transport/netlink-client.js';
import type { ClientTransport } from '../../transport/types.js';
import { Latencies } from '../lib/measure.js';

const transports: ClientTransport[] = [];
const sessions: VhsmSession[] = [];
let kind: 'echo' | 'vhsm' = 'echo';
const ECHO_PAYLOAD = randomBytes(96);
const DATA = randomBytes(32);

emit({ type: 'ready', pid: process.pid });

onCommand(async (cmd) => {
  if (cmd.cmd === 'open') {
    kind = cmd.kind === 'vhsm' ? 'vhsm' : 'echo';
    const count = Number(cmd.clients);
    for (let i = 0; i < count; i++) {
      const transport = await openNetlinkClient({ timeoutMs: 60_000 });
      transports.push(transport);
      if (kind === 'vhsm') {
        const client = await VhsmClient.connect(transport, { timeoutMs: 60_000 });
        sessions.push(await client.login(String(cmd.user), String(cmd.password)));
      }
    }
    emit({ type: 'opened', clients: transports.length });
  } else if (cmd.cmd === 'genkey') {
    const key = await sessions[0]!.generateKey({ type: 'ec-p256' });
    emit({ type: 'key', keyId: key.keyId });
  } else if (cmd.cmd === 'load') {
    const clients = Number(cmd.clients);
    const keyId = String(cmd.keyId ?? '');
    const warmMs = Number(cmd.warmMs);
    const ms = Number(cmd.ms);
    const latencies = new Latencies();
    const start = performance.now();
    const warmEnd = start + warmMs;
    const end = warmEnd + ms;
    let ops = 0;
    const loop = async (i: number): Promise<void> => {
      while (performance.now() < end) {
        const t0 = performance.now();
        if (kind === 'echo') await transports[i]!.request(ECHO_PAYLOAD);
        else await sessions[i]!.sign(keyId, DATA);
        const t1 = performance.now();
        if (t1 >= warmEnd && t1 <= end) {
          ops += 1;
          latencies.add(t1 - t0);
        }
      }
    };
    await Promise.all(Array.from({ length: clients }, (_, i) => loop(i)));
    const summary = latencies.summary();
    emit({ type: 'load', ops, seconds: ms / 1000, p50: summary.p50, p99: summary.p99 });
  } else if (cmd.cmd === 'close') {
    process.exit(0);
  }
});
