/**
 * One host of the two-host migration test (test/vm-pair/migrate.test.ts),
 * run inside its VM as `node dist/test/vm-pair/guest.js host1|host2`.
 *
 * host1 (192.0.2.1) runs the shared PostgreSQL and a VHSM server on it;
 * container app1 (CTID 101) creates a P-256 key and signs. host2 (192.0.2.2)
 * has its own kernel, module and VHSM server on the same database: app1
 * "migrates" there (the same CTID bound to a new netns) and signs with the
 * same key. The two VMs meet on a private QEMU link and coordinate through
 * files in /tmp/vhsm-pair, a directory both mount; results (signatures and
 * public keys) go to /tmp/vhsm-out for the host to check with openssl.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { VhsmWorld } from '../vm/lib/vhsm-world.js';

const role = process.argv[2];
const PAIR = '/tmp/vhsm-pair';
const OUT = '/tmp/vhsm-out';
const PG_BIN = '/usr/lib/postgresql/15/bin';
const PG_HOST = '192.0.2.1';
const ALICE = { name: 'alice', password: 'correct horse battery staple', ctids: [101] };
const MESSAGE = 'VHSM: the same key on another host, 2026-12-04\n';

function sh(cmd: string, args: readonly string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input === undefined ? {} : { input }) });
}

function say(line: string): void {
  process.stdout.write(`${role}: ${line}\n`);
}

async function waitFor(file: string, seconds: number): Promise<string> {
  const deadline = Date.now() + seconds * 1000;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return readFileSync(file, 'utf8').trim();
}

/**
 * The host's link goes to the VHSM container (netns "vhsm"): the server and
 * the database talk over it; client containers have no network at all.
 */
function linkToVhsmContainer(cidr: string): void {
  sh('ip', ['link', 'set', 'eth0', 'netns', 'vhsm']);
  sh('ip', ['-n', 'vhsm', 'addr', 'add', cidr, 'dev', 'eth0']);
  sh('ip', ['-n', 'vhsm', 'link', 'set', 'eth0', 'up']);
}

/** The database's password stays in a 0600 .pgpass file: never argv, never a URL. */
function pgpass(password: string): string {
  const file = '/tmp/pgpass';
  writeFileSync(file, `${PG_HOST}:5432:vhsm:vhsm:${password}\n`, { mode: 0o600 });
  return file;
}

/** A throwaway PostgreSQL 15 on 192.0.2.1, data on the VM's tmpfs, run as nobody. */
function startPostgres(password: string): void {
  const dir = '/tmp/pg';
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, 65534, 65534);
  const asNobody = (cmd: string, args: readonly string[], input?: string): string =>
    sh('runuser', ['-u', 'nobody', '--', join(PG_BIN, cmd), ...args], input);
  asNobody('initdb', ['-D', `${dir}/data`, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-sync']);
  writeFileSync(`${dir}/data/pg_hba.conf`, 'local all postgres trust\nhost vhsm vhsm 192.0.2.0/24 scram-sha-256\n');
  // Started from the VHSM container's netns: it listens on that container's link.
  sh('ip', ['netns', 'exec', 'vhsm', 'runuser', '-u', 'nobody', '--', join(PG_BIN, 'pg_ctl'), '-D', `${dir}/data`, '-w', '-t', '120', '-l', `${dir}/log`, '-o',
    `-c listen_addresses=${PG_HOST} -c unix_socket_directories=${dir}`, 'start']);
  const psql = (sql: string): string => sh('runuser', ['-u', 'nobody', '--', join(PG_BIN, 'psql'), '-h', dir, '-U', 'postgres', '-v', 'ON_ERROR_STOP=1', '-q', '-f', '-'], sql);
  psql(`CREATE ROLE vhsm LOGIN PASSWORD '${password}'; CREATE DATABASE vhsm OWNER vhsm;`);
}

function stopPostgres(): void {
  sh('runuser', ['-u', 'nobody', '--', join(PG_BIN, 'pg_ctl'), '-D', '/tmp/pg/data', '-m', 'fast', 'stop']);
}

async function signAs(vw: VhsmWorld, args: readonly string[], name: string): Promise<void> {
  const r = await vw.as('alice', 'app1', args, { timeoutMs: 120_000 });
  if (r.status !== 0) throw new Error(`vhsm ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  writeFileSync(join(OUT, name), r.stdout);
}

const databaseUrl = `postgres://vhsm@${PG_HOST}:5432/vhsm`;

const worldOptions = (pgpassFile: string, serverId: string) => ({
  clients: { app1: 101 },
  // Each server appends to its own audit chain in the shared database.
  serverConfig: { serverId },
  db: databaseUrl,
  env: { PGPASSFILE: pgpassFile },
  adminInVhsmNetns: true,
  init: false,
  server: false,
});

if (role === 'host1') {
  const password = readFileSync(join(PAIR, 'pg-password'), 'utf8').trim();
  const vw = await VhsmWorld.create(worldOptions(pgpass(password), 'host1'));
  try {
    linkToVhsmContainer('192.0.2.1/24');
    startPostgres(password);
    say('PostgreSQL listening');
    try {
      await vw.adminOk(['init']);
      await vw.addUser(ALICE);
      await vw.startServer();
      const msg = vw.file('msg', MESSAGE);
      const made = await vw.as('alice', 'app1', ['keys', 'generate', '--type', 'ec-p256', '--id', 'moves-with-app1'], { timeoutMs: 120_000 });
      if (made.status !== 0) throw new Error(`keys generate: ${made.stderr}`);
      await signAs(vw, ['sign', 'moves-with-app1', '--in', msg, '--encoding', 'raw'], 'host1.sig');
      await signAs(vw, ['keys', 'pubkey', 'moves-with-app1'], 'host1.pub.pem');
      say('key made and used on host 1');
      writeFileSync(join(PAIR, 'key-ready'), 'moves-with-app1\n');
      await waitFor(join(PAIR, 'host2-done'), 600);
      // Both servers' chains (and the admin's) in the one database, checked whole.
      const audit = await vw.adminOk(['--json', 'audit', 'verify']);
      writeFileSync(join(OUT, 'audit.json'), audit.stdout);
    } finally {
      await vw.stopServer();
      stopPostgres();
    }
  } finally {
    await vw.destroy();
  }
  say('done');
} else if (role === 'host2') {
  const password = readFileSync(join(PAIR, 'pg-password'), 'utf8').trim();
  try {
    // app1 arrives: the same CTID, a new netns on this host; its user brings
    // only the password.
    const vw = await VhsmWorld.create(worldOptions(pgpass(password), 'host2'));
    try {
      linkToVhsmContainer('192.0.2.2/24');
      const keyId = await waitFor(join(PAIR, 'key-ready'), 600);
      await vw.startServer();
      vw.rememberUser(ALICE);
      const msg = vw.file('msg', MESSAGE);
      await signAs(vw, ['sign', keyId, '--in', msg, '--encoding', 'raw'], 'host2.sig');
      await signAs(vw, ['keys', 'pubkey', keyId], 'host2.pub.pem');
      say('the same key used on host 2');
    } finally {
      await vw.destroy();
    }
  } finally {
    writeFileSync(join(PAIR, 'host2-done'), 'done\n');
  }
  say('done');
} else {
  process.stderr.write('usage: guest.js host1|host2\n');
  process.exit(2);
}
