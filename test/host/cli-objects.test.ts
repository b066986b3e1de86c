/**
 * The `vhsm` CLI rows added for PKCS#11: `passwd`, `certs add|list|delete`
 * and `public-objects`, run against a server over the in-memory transport
 * (the commands' netlink path is covered in the VM), and how their failures
 * map to exit codes.
 */
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { VhsmError, type VhsmClient, type VhsmSession } from '../../client/index.js';
import { toCliError } from '../../tools/cli/errors.js';
import { VHSM_EXIT } from '../../tools/cli/exit-codes.js';
import { completeInput, type Encoding } from '../../tools/cli/io.js';
import { OBJECT_OPERATIONS } from '../../tools/cli/object-operations.js';
import { OPERATIONS, type OpResult, type OperationSpec } from '../../tools/cli/operations.js';
import { ALICE, startFixture } from './helpers/fixture.js';
import { makeCertificate, pem } from './helpers/x509.js';

const ROWS = [...OPERATIONS, ...OBJECT_OPERATIONS];

function row(group: string | undefined, command: string): OperationSpec {
  const spec = ROWS.find((s) => s.group === group && s.command.split(' ')[0] === command);
  if (!spec) throw new Error(`no row ${group ?? ''} ${command}`);
  return spec;
}

interface Target {
  readonly session?: VhsmSession;
  readonly client: VhsmClient;
  readonly passwords?: { current: Uint8Array; replacement: Uint8Array };
}

/** Runs a row as tools/vhsm.ts does, with the session or the client it needs. */
function run(spec: OperationSpec, target: Target, args: Record<string, unknown> = {}, data: Uint8Array = new Uint8Array(0), encoding: Encoding = 'hex'): Promise<OpResult> {
  const inputs = { args, data, input: completeInput(data), files: {}, encoding };
  if (spec.login === false) return spec.run({ ...inputs, client: target.client, user: ALICE.name });
  if (!target.session) throw new Error('this row needs a session');
  return spec.run({ ...inputs, session: target.session, ...(target.passwords && { passwords: target.passwords }) });
}

const json = (result: OpResult): Record<string, unknown> => {
  if (result.kind !== 'text') throw new Error(`expected a text result, got ${result.kind}`);
  return result.json as Record<string, unknown>;
};

async function exitCodeOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return VHSM_EXIT.OK;
  } catch (error) {
    return toCliError(error, { user: ALICE.name }).exitCode;
  }
}

t.test('certs add, certs list, public-objects, certs delete', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const client = await fixture.client({ pid: 1 });
  const session = await client.login(ALICE.name, ALICE.password);
  await session.generateKey({ type: 'ec-p256', keyId: 'tls-key', label: 'www' });
  await session.generateKey({ type: 'hmac', keyId: 'mac-key' });
  const der = makeCertificate({ commonName: 'www.example' });

  const added = await run(row('certs', 'add'), { session, client }, { key: 'tls-key', label: 'www' }, Buffer.from(pem(der)));
  const certId = json(added).certId as string;
  t.match(certId, /^[0-9a-f]{32}$/, 'add (PEM input) prints the new id');
  t.equal(json(added).id, Buffer.from('tls-key').toString('hex'), '--key makes the CKA_ID the key id bytes');
  t.equal(await exitCodeOf(run(row('certs', 'add'), { session, client }, { key: 'no-such-key' }, der)), VHSM_EXIT.NOT_FOUND, '--key of a missing key: exit 4');
  t.equal(await exitCodeOf(run(row('certs', 'add'), { session, client }, { key: 'tls-key', id: '00' }, der)), VHSM_EXIT.USAGE, '--key and --id together: exit 2');
  t.equal(await exitCodeOf(run(row('certs', 'add'), { session, client }, { id: 'zz' }, der)), VHSM_EXIT.USAGE, 'a non-hex --id: exit 2');
  t.equal(await exitCodeOf(run(row('certs', 'add'), { session, client }, {}, Buffer.from('not a certificate'))), VHSM_EXIT.USAGE, 'refused by the server as invalid: exit 2');

  const stranger = await fixture.client({ pid: 2 }); // no login
  const listed = await run(row('certs', 'list'), { client: stranger }, {}, undefined, 'base64');
  const certs = json(listed).certificates as Record<string, unknown>[];
  t.equal(certs.length, 1, 'list: one certificate, without a password');
  t.equal(certs[0]!.subject, new X509Certificate(der).subject, 'with its subject');
  t.equal(certs[0]!.der, der.toString('base64'), 'and its DER in --encoding');
  t.match(listed.kind === 'text' ? listed.text : '', /www\.example/, 'the table shows the subject');

  const objects = json(await run(row(undefined, 'public-objects'), { client: stranger }));
  t.same((objects.keys as { keyId: string }[]).map((k) => k.keyId), ['tls-key'], 'public-objects: the key pair, not the HMAC key');
  t.equal((objects.keys as { spki: string }[])[0]!.spki, Buffer.from(await session.publicKey('tls-key')).toString('hex'), 'with its SPKI');
  t.equal((objects.certificates as unknown[]).length, 1, 'and the certificate');

  t.equal(json(await run(row('certs', 'delete'), { session, client }, { cert: certId })).deleted, certId, 'delete');
  t.equal(await exitCodeOf(run(row('certs', 'delete'), { session, client }, { cert: certId })), VHSM_EXIT.NOT_FOUND, 'deleting it again: exit 4');

  const outsider = await fixture.client({ ctid: 102 });
  t.equal(await exitCodeOf(run(row(undefined, 'public-objects'), { client: outsider })), VHSM_EXIT.CONTAINER_NOT_ALLOWED, 'from a container outside the set: exit 10');
});

t.test('passwd: changes the password; a wrong current one fails like a login', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const client = await fixture.client();
  const session = await client.login(ALICE.name, ALICE.password);
  const passwd = row(undefined, 'passwd');
  t.equal(passwd.login !== false && passwd.newPassword, true, 'passwd asks for a new password');
  const wrong = { current: Buffer.from('not it'), replacement: Buffer.from('new one') };
  t.equal(await exitCodeOf(run(passwd, { session, client, passwords: wrong })), VHSM_EXIT.BAD_PASSWORD, 'wrong current password: exit 6');
  const result = await run(passwd, { session, client, passwords: { current: Buffer.from(ALICE.password), replacement: Buffer.from('new one') } });
  t.same(json(result), { user: ALICE.name, changed: true }, 'changed');
  await t.rejects(client.login(ALICE.name, ALICE.password), VhsmError, 'the old password no longer logs in');
  t.ok((await client.login(ALICE.name, 'new one')).active, 'the new one does');
});
