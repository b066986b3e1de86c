/**
 * A stand-in VHSM server for transport tests: registers with the module and
 * answers each request with the kernel's stamp followed by the payload.
 * argv[2]: "echo" (default) or "silent" (never answers: for ETIMEDOUT tests).
 */
import { createHash } from 'node:crypto';
import { registerNetlinkServer } from '../../../transport/netlink-server.js';
import { emit, onCommand, errorCode, ECHO_HEADER, echoBody } from './io.js';

const silent = process.argv[2] === 'silent';
let received = 0;
let replyErrors = 0;
try {
  const server = await registerNetlinkServer();
  server.listen((req) => {
    received++;
    if (silent) return;
    const body = echoBody(req.payload, (p) => createHash('sha256').update(p).digest());
    const out = new Uint8Array(ECHO_HEADER + body.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, req.sender.ctid, true);
    view.setUint32(4, req.sender.pid, true);
    view.setUint32(8, req.sender.uid, true);
    view.setUint32(12, req.sender.gid, true);
    view.setBigUint64(16, req.sender.netnsCookie, true);
    out.set(body, ECHO_HEADER);
    server.reply(req.requestId, out).catch(() => replyErrors++);
  });
  emit({ type: 'ready', pid: process.pid });
  onCommand(async (cmd) => {
    if (cmd.cmd === 'stats') emit({ type: 'stats', received, replyErrors });
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
