/**
 * A stand-in VHSM server for transport tests: registers with the module and
 * answers each request with the kernel's stamp followed by the payload.
 * argv[2]: "echo" (default) or "silent" (never answers: for ETIMEDOUT tests);
 * argv[3]: receive buffer to ask for, in bytes (default: the transport's).
 *
 * Requests are answered on the next loop turn, as a real server's queue
 * would: a CANCEL that arrives meanwhile skips the work (an empty reply
 * releases the request), which `skipped` counts.
 */
import { createHash } from 'node:crypto';
import { registerNetlinkServer } from '../../../transport/netlink-server.js';
import type { StampedRequest } from '../../../transport/types.js';
import { emit, onCommand, errorCode, ECHO_HEADER, echoBody } from './io.js';

const silent = process.argv[2] === 'silent';
const recvBufferBytes = process.argv[3] ? Number(process.argv[3]) : undefined;
let received = 0;
let replyErrors = 0;
let cancels = 0;
let skipped = 0;
const queued = new Map<bigint, StampedRequest>();

function echo(req: StampedRequest): Uint8Array {
  const body = echoBody(req.payload, (p) => createHash('sha256').update(p).digest());
  const out = new Uint8Array(ECHO_HEADER + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, req.sender.ctid, true);
  view.setUint32(4, req.sender.pid, true);
  view.setUint32(8, req.sender.uid, true);
  view.setUint32(12, req.sender.gid, true);
  view.setBigUint64(16, req.sender.netnsCookie, true);
  out.set(body, ECHO_HEADER);
  return out;
}

try {
  const server = await registerNetlinkServer(recvBufferBytes ? { recvBufferBytes } : {});
  const answer = (id: bigint, payload: Uint8Array): void => void server.reply(id, payload).catch(() => replyErrors++);
  server.listen(
    (req) => {
      received++;
      if (silent) return;
      queued.set(req.requestId, req);
      setImmediate(() => {
        if (queued.delete(req.requestId)) answer(req.requestId, echo(req));
      });
    },
    (id) => {
      cancels++;
      if (!queued.delete(id)) return;
      skipped++;
      answer(id, new Uint8Array(0));
    },
  );
  emit({ type: 'ready', pid: process.pid });
  onCommand(async (cmd) => {
    if (cmd.cmd === 'stats') emit({ type: 'stats', received, replyErrors, cancels, skipped });
    if (cmd.cmd === 'close') {
      await server.close();
      emit({ type: 'closed', received, replyErrors });
      process.exit(0);
    }
  });
} catch (err) {
  emit({ type: 'register-failed', code: errorCode(err), message: String((err as Error).message) });
  process.exit(0);
}
