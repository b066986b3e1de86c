/**
 * PostgreSQL for host tests: one throwaway cluster (scripts/pg-cluster.sh)
 * and a fresh database per caller, dropped at teardown.
 *
 * The test runner starts the cluster once and passes its URL in
 * VHSM_TEST_PG_URL; a test file run on its own (npx tap ...) starts a
 * cluster of its own and stops it when the process exits.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'scripts', 'pg-cluster.sh');
let ownCluster: string | undefined;

/** The cluster's admin URL (database `vhsm`). */
export function pgClusterUrl(): string {
  const given = process.env.VHSM_TEST_PG_URL;
  if (given) return given;
  if (ownCluster === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'vhsm-pg-'));
    const url = execFileSync('bash', [script, 'start', dir], { encoding: 'utf8' }).trim();
    process.env.VHSM_TEST_PG_URL = url;
    process.env.VHSM_TEST_PG_DIR = dir;
    ownCluster = dir;
    process.on('exit', () => {
      execFileSync('bash', [script, 'stop', dir], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    });
  }
  return process.env.VHSM_TEST_PG_URL!;
}

/** The cluster's directory (for restart tests). */
export function pgClusterDir(): string {
  pgClusterUrl();
  const url = new URL(process.env.VHSM_TEST_PG_URL!);
  return process.env.VHSM_TEST_PG_DIR ?? url.searchParams.get('host')!;
}

/** Restarts the cluster (pg_ctl restart -m fast): every connection drops. */
export function restartPgCluster(): void {
  execFileSync('bash', [script, 'restart', pgClusterDir()], { stdio: 'ignore' });
}

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

/** A new empty database; dropped by `drop()`. */
export async function freshPgDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = pgClusterUrl();
  const name = `vhsm_t_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return {
    url: withDatabase(admin, name),
    async drop() {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A cluster of the caller's own (for tests that restart it), stopped by `stop()`. */
export function startOwnPgCluster(): { url: string; restart(): Promise<void>; stop(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'vhsm-pg-own-'));
  const url = execFileSync('bash', [script, 'start', dir], { encoding: 'utf8' }).trim();
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    execFileSync('bash', [script, 'stop', dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', stop);
  // Asynchronous: the event loop keeps serving (and failing) requests while the cluster is down.
  const restart = (): Promise<void> =>
    new Promise((resolve, reject) => execFile('bash', [script, 'restart', dir], (error) => (error ? reject(error) : resolve())));
  return { url, restart, stop };
}
