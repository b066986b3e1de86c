/**
 * The one test with the real PBKDF2 cost: new users get 600,000 iterations
 * by default, and such a user logs in through a server with default options.
 */
import t from 'tap';
import { join } from 'node:path';
import { VhsmClient } from '../../client/index.js';
import { DEFAULT_PBKDF2_ITERATIONS } from '../../server/kdf.js';
import { DEFAULT_LOCKOUT_POLICY } from '../../server/lockout.js';
import { VhsmServer } from '../../server/server.js';
import { Store } from '../../server/storage.js';
import { createUser, findUserByName } from '../../server/users.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import { identity, tempDir } from './helpers/fixture.js';

t.test('PBKDF2 defaults to 600,000 iterations', async (t) => {
  t.equal(DEFAULT_PBKDF2_ITERATIONS, 600_000, 'the default count');
  t.ok(DEFAULT_LOCKOUT_POLICY.lockAfter <= 10, 'lockout after at most 10 failures by default');
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const path = join(dir, 'default.db');
  const store = Store.open(path, { create: true });
  await createUser(store, { name: 'carol', password: Buffer.from('a long passphrase'), iterations: DEFAULT_PBKDF2_ITERATIONS, ctids: [101], nowMs: Date.now() });
  const user = findUserByName(store.db, 'carol')!;
  t.equal(user.kdfIterations, 600_000, 'stored per user');
  t.ok(user.kdfSalt.length >= 16, `salt of ${user.kdfSalt.length} random bytes`);
  store.close();

  const hub = new MemoryTransportHub();
  const server = await VhsmServer.open({ storagePath: path }); // all defaults
  server.serve(hub.createServerTransport());
  t.teardown(() => server.stop());
  const client = await VhsmClient.connect(hub.connect(identity()));
  const started = Date.now();
  const session = await client.login('carol', 'a long passphrase');
  t.comment(`login with 600k iterations took ${Date.now() - started} ms`);
  t.ok(session.active, 'logs in');
  await client.close();
});
