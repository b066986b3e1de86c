/**
 * A test client in a container. Commands (JSON lines on stdin):
 *   {cmd:"burst", count, concurrency, size}  many requests, each checked
 *   {cmd:"one", size, timeoutMs?}            one request, result or error code
 *   {cmd:"abandon", count}                   send requests and exit at once
 *   {cmd:"churn", ms, perSocket, size}       for `ms`: open a socket, send `perSocket`
 *        requests of `size` bytes, wait a moment for refusals, close it; counts
 *        sockets and refusals by code
 * Replies are checked against what this process knows of itself: its PID as
 * its container sees it (stampedPid()), its uid/gid, and the payload.
 */
import { createHash, randomBytes } from 'node:crypto';
import { openNetlinkClient } from '../../../transport/netlink-client.js';
import { emit, onCommand, errorCode, ECHO_HEADER, echoBody, nsPids, stampedPid } from './io.js';

const expectedCtid = Number(process.argv[2] ?? 0);
const expectedPid = stampedPid();
const client = await openNetlinkClient();
emit({ type: 'ready', pid: process.pid, nspid: nsPids(), uid: process.getuid?.(), gid: process.getgid?.() });

interface Check {
  ok: boolean;
  misrouted: boolean;
  cookie: bigint;
}

/** What the echo server says the kernel stamped. */
function stampOf(reply: Uint8Array): { ctid: number; pid: number; uid: number; gid: number } {
  const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  return { ctid: view.getUint32(0, true), pid: view.getUint32(4, true), uid: view.getUint32(8, true), gid: view.getUint32(12, true) };
}

function check(sent: Uint8Array, reply: Uint8Array): Check {
  const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  const echoed = reply.subarray(ECHO_HEADER);
  const expected = echoBody(sent, (p) => createHash('sha256').update(p).digest());
  const sameBytes = echoed.length === expected.length && Buffer.compare(Buffer.from(echoed), Buffer.from(expected)) === 0;
  const stampOk =
    view.getUint32(0, true) === expectedCtid &&
    view.getUint32(4, true) === expectedPid &&
    view.getUint32(8, true) === process.getuid!() &&
    view.getUint32(12, true) === process.getgid!();
  return { ok: sameBytes && stampOk, misrouted: !sameBytes, cookie: view.getBigUint64(16, true) };
}

onCommand(async (cmd) => {
  if (cmd.cmd === 'burst') {
    const count = Number(cmd.count);
    const concurrency = Number(cmd.concurrency ?? 32);
    const size = Number(cmd.size ?? 64);
    let next = 0;
    let ok = 0;
    let misrouted = 0;
    let badStamp = 0;
    const errors: Record<string, number> = {};
    const cookies = new Set<string>();
    const started = Date.now();
    async function worker(): Promise<void> {
      while (next < count) {
        next++;
        const payload = randomBytes(1 + Math.floor(Math.random() * size));
        try {
          const c = check(payload, await client.request(payload));
          cookies.add(c.cookie.toString());
          if (c.ok) ok++;
          else if (c.misrouted) misrouted++;
          else badStamp++;
        } catch (err) {
          const code = errorCode(err);
          errors[code] = (errors[code] ?? 0) + 1;
        }
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker));
    emit({ type: 'burst', count, ok, misrouted, badStamp, errors, cookies: [...cookies], ms: Date.now() - started });
  } else if (cmd.cmd === 'one') {
    const payload = randomBytes(Number(cmd.size ?? 16));
    try {
      const opts = cmd.timeoutMs ? { timeoutMs: Number(cmd.timeoutMs) } : undefined;
      const reply = await client.request(payload, opts);
      const c = check(payload, reply);
      emit({ type: 'one', ok: c.ok, cookie: c.cookie, stamp: stampOf(reply) });
    } catch (err) {
      emit({ type: 'one', ok: false, code: errorCode(err), message: (err as Error).message });
    }
  } else if (cmd.cmd === 'abandon') {
    for (let i = 0; i < Number(cmd.count); i++) client.request(randomBytes(16)).catch(() => undefined);
    // Give the sends a moment to leave, then vanish without reading replies.
    setTimeout(() => process.exit(0), 50);
  } else if (cmd.cmd === 'churn') {
    const end = Date.now() + Number(cmd.ms);
    const errors: Record<string, number> = {};
    let sockets = 0;
    let sent = 0;
    while (Date.now() < end) {
      const socket = await openNetlinkClient();
      sockets++;
      for (let i = 0; i < Number(cmd.perSocket); i++) {
        sent++;
        socket.request(randomBytes(Number(cmd.size))).catch((err: unknown) => {
          const code = errorCode(err);
          errors[code] = (errors[code] ?? 0) + 1;
        });
      }
      await new Promise((r) => setTimeout(r, 20)); // refusals come back at once
      await socket.close();
    }
    await new Promise((r) => setImmediate(r));
    emit({ type: 'churn', sockets, sent, errors });
  } else if (cmd.cmd === 'close') {
    await client.close();
    process.exit(0);
  }
});
