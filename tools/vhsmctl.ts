#!/usr/bin/env node
/**
 * vhsmctl: the host admin's view of vhsm_transport.ko — bind containers'
 * network namespaces to CTIDs, list bindings, show the server and counters.
 * Runs in the host's initial network namespace with CAP_NET_ADMIN.
 *
 * Exit codes: 0 ok, 1 the kernel refused (message says why), 2 bad usage,
 * 3 the module is not loaded.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { VhsmAdmin, type Binding, type Stats } from '../transport/netlink-admin.js';
import { TransportError } from '../transport/types.js';

const EXIT_REFUSED = 1;
const EXIT_USAGE = 2;
const EXIT_NO_MODULE = 3;

function jsonOut(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

function parseCtid(value: unknown): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new UsageError(`--ctid must be an integer from 1 to 4294967295, got ${String(value)}`);
  return n;
}

class UsageError extends Error {}

async function withAdmin<T>(fn: (admin: VhsmAdmin) => Promise<T>): Promise<T> {
  const admin = await VhsmAdmin.open();
  try {
    return await fn(admin);
  } finally {
    await admin.close();
  }
}

function printBindings(bindings: Binding[]): void {
  if (bindings.length === 0) {
    process.stdout.write('no containers bound\n');
    return;
  }
  const row = (cells: (string | number | bigint)[]): string =>
    `${cells.map((c, i) => (i < cells.length - 1 ? String(c).padEnd([12, 22, 14, 14, 9][i]!) : String(c))).join('')}\n`;
  process.stdout.write(row(['CTID', 'NETNS COOKIE', 'NETNS INODE', 'PIDNS INODE', 'PENDING', 'QUEUED BYTES']));
  for (const b of bindings) process.stdout.write(row([b.ctid, b.netnsCookie, b.netnsIno, b.pidnsIno, b.pending, b.queuedBytes]));
}

function printStats(stats: Stats): void {
  const s = stats.server;
  process.stdout.write(
    s
      ? `server: registered from CTID ${s.ctid} (pid ${s.pid}, netns cookie ${s.netnsCookie}, port ${s.portid})\n`
      : 'server: none registered\n',
  );
  process.stdout.write(`pending: ${stats.pending}\n`);
  for (const [name, value] of Object.entries(stats.counters)) process.stdout.write(`${name.padEnd(14)}${value}\n`);
}

// `vhsmctl list | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const cli = yargs(hideBin(process.argv))
  .scriptName('vhsmctl')
  .usage('$0 <command> [options]\n\nHost control of the VHSM transport module (run as root on the host).')
  .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
  .command(
    'bind',
    'bind a container (its network namespace) to a CTID',
    (y) =>
      y
        .option('ctid', { type: 'number', demandOption: true, describe: 'container id, 1..4294967295' })
        .option('pid', { type: 'number', describe: "any process inside the container: its netns, and its pid namespace for the stamped PIDs" })
        .option('netns', { type: 'string', describe: "a netns file, e.g. /run/netns/NAME or /proc/PID/ns/net (PIDs stamped as the host sees them unless --pidns-pid)" })
        .option('pidns-pid', { type: 'number', describe: "a process whose pid namespace the container's PIDs are stamped in (default: that of --pid, else the host's)" })
        .epilog(
          'Requests are stamped with the PID and uid the container sees: in the pid namespace chosen here and the user ' +
            'namespace that owns the netns. A process that this pid namespace cannot see (one in a sibling container ' +
            'sharing the netns, e.g. another container of a Kubernetes pod) is refused: bind such a shared netns with ' +
            '--netns and no --pidns-pid, and PIDs are stamped as the host sees them.',
        )
        .check((a) => {
          if ((a.pid === undefined) === (a.netns === undefined)) throw new UsageError('give exactly one of --pid or --netns');
          return true;
        }),
    async (a) => {
      const ctid = parseCtid(a.ctid);
      const pidns = a.pidnsPid !== undefined ? { pidnsPid: a.pidnsPid } : {};
      const target = a.pid !== undefined ? { pid: a.pid, ...pidns } : { netnsPath: a.netns!, ...pidns };
      await withAdmin((admin) => admin.bind(ctid, target));
      if (a.json) jsonOut({ bound: ctid, ...target });
      else process.stdout.write(`bound CTID ${ctid}\n`);
    },
  )
  .command(
    'unbind',
    'forget a CTID binding (a server registered from it is dropped)',
    (y) => y.option('ctid', { type: 'number', demandOption: true }),
    async (a) => {
      const ctid = parseCtid(a.ctid);
      await withAdmin((admin) => admin.unbind(ctid));
      if (a.json) jsonOut({ unbound: ctid });
      else process.stdout.write(`unbound CTID ${ctid}\n`);
    },
  )
  .command(
    ['list', 'ls'],
    'list bound containers',
    (y) => y,
    async (a) => {
      const bindings = await withAdmin((admin) => admin.list());
      if (a.json) jsonOut(bindings);
      else printBindings(bindings);
    },
  )
  .command(
    'status',
    'show the registered server and the transport counters',
    (y) => y,
    async (a) => {
      const stats = await withAdmin((admin) => admin.stats());
      if (a.json) jsonOut(stats);
      else printStats(stats);
    },
  )
  .demandCommand(1, 'name a command: bind, unbind, list or status')
  .strict()
  .fail((msg, err) => {
    throw err ?? new UsageError(msg);
  })
  .help();

try {
  await cli.parseAsync();
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`vhsmctl: ${err.message}\nTry 'vhsmctl --help'.\n`);
    process.exit(EXIT_USAGE);
  }
  if (err instanceof TransportError) {
    process.stderr.write(`vhsmctl: ${err.message}\n`);
    process.exit(err.code === 'ENOENT' && /module/.test(err.message) ? EXIT_NO_MODULE : EXIT_REFUSED);
  }
  process.stderr.write(`vhsmctl: ${(err as Error).message ?? String(err)}\n`);
  process.exit(EXIT_REFUSED);
}
