/**
 * An application in a container using the client library over the real
 * module. Commands (JSON lines on stdin):
 *   {cmd:"sign-flow", user, password, keyType, message(b64)}
 *        login, generate a key, sign, export the public key (PEM), logout
 *   {cmd:"login", user, password}            -> {ok, code?, session(hex)}  (raw protocol)
 *   {cmd:"raw", op, body, session(hex)}      -> {ok, code?}                (raw protocol)
 *   {cmd:"exit"}                             exits at once
 */
import { VhsmClient } from '../../../client/index.js';
import { openNetlinkClient } from '../../../transport/netlink-client.js';
import { emit, onCommand, errorCode, nsPids } from './io.js';

const client = await VhsmClient.connect(await openNetlinkClient({ timeoutMs: 30_000 }), { timeoutMs: 30_000 });
emit({ type: 'ready', pid: process.pid, nspid: nsPids() });

type AnyCall = (op: string, body: unknown, session: Uint8Array | null) => Promise<Record<string, unknown>>;
const rawCall = client.call.bind(client) as unknown as AnyCall;

onCommand(async (cmd) => {
  if (cmd.cmd === 'exit') process.exit(0);
  try {
    if (cmd.cmd === 'sign-flow') {
      const session = await client.login(String(cmd.user), String(cmd.password));
      const key = await session.generateKey({ type: cmd.keyType as 'ec-p256' | 'ed25519' });
      const message = Buffer.from(String(cmd.message), 'base64');
      const signature = await session.sign(key.keyId, message);
      const pem = await session.publicKey(key.keyId, 'spki-pem');
      const verified = await session.verify(key.keyId, message, signature);
      await session.logout();
      emit({ type: 'sign-flow', ok: true, keyId: key.keyId, signature: Buffer.from(signature).toString('base64'), pem, verified });
    } else if (cmd.cmd === 'login') {
      const result = await rawCall('login', { username: String(cmd.user), password: Buffer.from(String(cmd.password)) }, null);
      emit({ type: 'login', ok: true, session: Buffer.from(result.session as Uint8Array).toString('hex') });
    } else if (cmd.cmd === 'raw') {
      await rawCall(String(cmd.op), cmd.body ?? {}, Buffer.from(String(cmd.session), 'hex'));
      emit({ type: 'raw', ok: true });
    }
  } catch (err) {
    emit({ type: String(cmd.cmd), ok: false, code: errorCode(err), message: (err as Error).message });
  }
});
