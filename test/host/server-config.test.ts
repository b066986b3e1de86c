/**
 * vhsm-server's config file: the shipped one (every setting at its default)
 * is accepted, unknown settings and bad values are usage errors (exit 2)
 * that name the setting. Runs the real binary against a DB path that does
 * not exist, so an accepted config ends at "DB missing" (exit 3) before any
 * transport is needed.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/fixture.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const server = join(root, 'dist', 'tools', 'vhsm-server.js');

function run(config: string): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [server, '--config', config, '--db', '/nonexistent/vhsm.db'], { encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stderr: result.stderr };
}

t.test('vhsm-server --config', async (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const shipped = run(join(root, 'packaging', 'vhsm-server.json'));
  t.equal(shipped.status, 3, 'the shipped config is accepted (then: no DB, exit 3)');
  t.match(shipped.stderr, /does not exist/);

  const cases: [string, unknown, RegExp][] = [
    ['durability all', { durability: 'all' }, /does not exist/],
    ['adaptive fairness settings', { fairness: { maxInFlightPerContainer: 16, maxInFlightPerContainerShared: 1, activeWindowMs: 20 } }, /does not exist/],
    ['an unknown durability', { durability: 'sometimes' }, /durability is one of changes, all/],
    ['an unknown fairness setting', { fairness: { maxInFlightPerCt: 4 } }, /unknown setting fairness\.maxInFlightPerCt/],
    ['a negative cap', { fairness: { maxInFlightPerContainerShared: -1 } }, /fairness\.maxInFlightPerContainerShared must be a non-negative integer/],
    ['an unknown top-level setting', { durable: true }, /unknown setting durable/],
    ['a cap of 0 (would never start a request)', { fairness: { maxInFlightPerContainerShared: 0 } }, /fairness\.maxInFlightPerContainerShared must be an integer >= 1/],
    ['no key derivations at all', { maxConcurrentKdf: 0 }, /maxConcurrentKdf must be an integer >= 1/],
  ];
  for (const [what, config, message] of cases) {
    const file = join(dir, 'server.json');
    writeFileSync(file, JSON.stringify(config));
    const result = run(file);
    const expected = message.source === 'does not exist' ? 3 : 2;
    t.equal(result.status, expected, `${what}: exit ${expected}`);
    t.match(result.stderr, message, `${what}: says why`);
  }
});
