/**
 * Child process for the crash test: a server on a file DB, the in-memory
 * transport, and a client in the same process creating keys with 8 in
 * flight, printing each acknowledged key id on its own stdout line, while 4
 * more requests at a time sign with one key, printing `signed` for each
 * acknowledged signature. The parent kills it with SIGKILL part-way through.
 *
 *   node crash-child.js DB_PATH COUNT [SERVER_ID]
 *
 * DB_PATH may be a postgres:// URL (then SERVER_ID names its audit chain).
 */
import { VhsmClient } from '../../../client/index.js';
import { VhsmServer } from '../../../server/server.js';
import { MemoryTransportHub } from '../../../transport/memory.js';
import { ALICE, TEST_ITERATIONS, identity } from './fixture.js';

const [dbPath, countText, serverId] = process.argv.slice(2);
const count = Number(countText);
const hub = new MemoryTransportHub();
const server = await VhsmServer.open({ storagePath: dbPath!, pbkdf2Iterations: TEST_ITERATIONS, ...(serverId ? { serverId } : {}) });
server.serve(hub.createServerTransport());
const client = await VhsmClient.connect(hub.connect(identity()));
const session = await client.login(ALICE.name, ALICE.password);
const signingKey = await session.generateKey({ type: 'ed25519', keyId: 'signer' });
process.stdout.write('ready\n');

let next = 0;
async function worker(): Promise<void> {
  while (next < count) {
    const keyId = `crash-${String(next++).padStart(4, '0')}`;
    await session.generateKey({ type: next % 2 ? 'ec-p256' : 'ed25519', keyId });
    process.stdout.write(`${keyId}\n`);
  }
}
let creating = true;
async function signer(): Promise<void> {
  while (creating) {
    await session.sign(signingKey.keyId, new Uint8Array([1, 2, 3]));
    process.stdout.write('signed\n');
  }
}
const signers = Array.from({ length: 4 }, signer);
await Promise.all(Array.from({ length: 8 }, worker));
creating = false;
await Promise.all(signers);
process.stdout.write('done\n');
await client.close();
await server.stop();
