/**
 * The least-privilege setup of docs/install.md §4b, for real: a schema
 * owner role runs vhsm-admin, a server role gets only the GRANTs listed
 * there, and a server connected as that role does everything a client can
 * ask (login, a failed login, keys, certificates, password change, public
 * listing) while it cannot rewrite or delete audit rows, move a chain head
 * back, delete users or drop tables.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { VhsmClient } from '../../client/index.js';
import { openAdminStore } from '../../server/admin-store.js';
import { VhsmServer } from '../../server/server.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import { ALICE, TEST_ITERATIONS, identity } from './helpers/fixture.js';
import { pgClusterUrl } from './helpers/pg.js';
import { makeCertificate } from './helpers/x509.js';

/** The GRANTs of docs/install.md §4b, for roles `admin` and `server`. */
function serverGrants(server: string): string {
  return `
    GRANT SELECT ON vhsm_schema, users, user_containers TO ${server};
    GRANT UPDATE (kdf_salt, kdf_iterations, wrapped_auth_key, password_changed_ms) ON users TO ${server};
    GRANT SELECT, INSERT, UPDATE, DELETE ON login_failures, keys TO ${server};
    GRANT SELECT, INSERT, DELETE ON certificates TO ${server};
    GRANT SELECT, INSERT ON audit TO ${server};
    GRANT SELECT, INSERT, UPDATE ON audit_heads TO ${server};
    GRANT USAGE ON SEQUENCE keys_id_seq, certificates_id_seq TO ${server};`;
}

function urlFor(role: string, database: string): string {
  const url = new URL(pgClusterUrl());
  url.username = role;
  url.pathname = `/${database}`;
  return url.toString();
}

async function asSuperuser(database: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: urlFor(new URL(pgClusterUrl()).username, database) });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

t.test('the documented roles: the server works, and cannot rewrite the audit', async (t) => {
  const suffix = randomBytes(4).toString('hex');
  const [admin, server, database] = [`vhsm_admin_${suffix}`, `vhsm_server_${suffix}`, `vhsm_roles_${suffix}`];
  await asSuperuser('postgres', `CREATE ROLE ${admin} LOGIN; CREATE ROLE ${server} LOGIN`);
  await asSuperuser('postgres', `CREATE DATABASE ${database} OWNER ${admin}`);
  await asSuperuser('postgres', `REVOKE ALL ON DATABASE ${database} FROM PUBLIC; GRANT CONNECT ON DATABASE ${database} TO ${server}`);
  await asSuperuser(database, 'REVOKE CREATE ON SCHEMA public FROM PUBLIC');
  t.teardown(async () => {
    await asSuperuser('postgres', `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await asSuperuser('postgres', `DROP ROLE IF EXISTS ${server}; DROP ROLE IF EXISTS ${admin}`);
  });

  const store = await openAdminStore(urlFor(admin, database), { create: true });
  await store.createUser({ name: ALICE.name, password: Buffer.from(ALICE.password), iterations: TEST_ITERATIONS, ctids: [101], nowMs: Date.now() });
  await store.close();
  await asSuperuser(database, `SET ROLE ${admin}; ${serverGrants(server)}`);

  const hub = new MemoryTransportHub();
  const vhsm = await VhsmServer.open({ storagePath: urlFor(server, database), serverId: 'roles', pbkdf2Iterations: TEST_ITERATIONS });
  vhsm.serve(hub.createServerTransport());
  const client = await VhsmClient.connect(hub.connect(identity({ ctid: 101 })));
  await t.rejects(client.login(ALICE.name, 'wrong'), { code: 'BAD_CREDENTIALS' }, 'a failed login is recorded');
  const session = await client.login(ALICE.name, ALICE.password);
  await session.generateKey({ type: 'ec-p256', keyId: 'k1' });
  t.ok((await session.sign('k1', new Uint8Array(4))).length > 0, 'sign');
  await session.generateKey({ type: 'hmac', keyId: 'k2' });
  await session.deleteKey('k2');
  const cert = await session.createCertificate({ der: makeCertificate() });
  await session.deleteCertificate(cert.certId);
  await session.changePassword(ALICE.password, `${ALICE.password} 2`);
  t.equal((await client.listPublicObjects(ALICE.name)).keys.length, 1, 'public listing');
  await client.close();
  await vhsm.stop();

  const asServer = new pg.Client({ connectionString: urlFor(server, database) });
  await asServer.connect();
  t.teardown(() => asServer.end());
  for (const sql of ["UPDATE audit SET result = 'OK'", 'DELETE FROM audit', 'TRUNCATE audit', 'UPDATE audit_heads SET seq = 0', 'DELETE FROM users', 'DROP TABLE keys']) {
    await t.rejects(asServer.query(sql), `the server role cannot: ${sql}`);
  }
  const verify = await openAdminStore(urlFor(admin, database));
  t.ok((await verify.verifyAudit()).ok, 'the audit verifies');
  await verify.close();
});
