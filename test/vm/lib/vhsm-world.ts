/**
 * A world with the real VHSM: the module loaded, the "vhsm" netns bound to
 * 412 with vhsm-server running in it on a DB made by vhsm-admin, client
 * netns bound to their CTIDs, and a runner for the real `vhsm` binary in a
 * client netns (stdin in; stdout, stderr and exit status out).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { World } from './world.js';

/** The repository root (this file runs from dist/test/vm/lib). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const toolPath = (name: string): string => join(repoRoot, 'dist', 'tools', `${name}.js`);

export interface UserSpec {
  readonly name: string;
  readonly password: string;
  readonly ctids: readonly number[];
}

export interface VhsmWorldOptions {
  readonly clients: Record<string, number>;
  readonly users?: readonly UserSpec[];
  /** Start vhsm-server (default true). */
  readonly server?: boolean;
  /** Extra vhsm-server config (JSON file), e.g. a lockout policy. */
  readonly serverConfig?: Record<string, unknown>;
  /** The store for vhsm-admin and vhsm-server: a postgres:// URL (default: a SQLite file in the world's dir). */
  readonly db?: string;
  /** Create the store's schema with `vhsm-admin init` (default true; false joins an existing one). */
  readonly init?: boolean;
  /** Environment for vhsm-admin and vhsm-server (e.g. PGPASSFILE). */
  readonly env?: Record<string, string>;
  /** Run vhsm-admin in the vhsm netns (a database reached over its network), not the host's. */
  readonly adminInVhsmNetns?: boolean;
}

export interface RunOptions {
  readonly input?: string | Buffer;
  readonly env?: Record<string, string>;
  /** Called once the process is started (e.g. to look at it in /proc while it runs). */
  readonly onSpawn?: (child: ChildProcess) => void;
  /** Keep stdin open until this resolves (default: write input and close at once). */
  readonly holdStdin?: Promise<unknown>;
  readonly timeoutMs?: number;
}

export interface CliRun {
  readonly status: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** stdout as UTF-8. */
  readonly out: string;
  /** stdout parsed as JSON (throws with the output when it is not). */
  json<T = Record<string, unknown>>(): T;
}

/**
 * Runs argv (in netns `ns`, or the host netns when null) in a new session,
 * so it has no controlling terminal: a password prompt cannot hang a test.
 * VHSM_CLI_TIMING=1 prints each run's wall time as a TAP comment.
 */
export function run(ns: string | null, argv: readonly string[], options: RunOptions = {}): Promise<CliRun> {
  const full = ns ? ['ip', 'netns', 'exec', ns, ...argv] : [...argv];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(full[0]!, full.slice(1), {
      cwd: repoRoot,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', ...options.env },
    });
    const started = Date.now();
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => stdout.push(d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on('error', () => undefined); // the tool may exit before reading its stdin
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      if (process.env.VHSM_CLI_TIMING) process.stderr.write(`# ${Date.now() - started} ms: ${argv.slice(1).join(' ')}\n`);
      const bytes = Buffer.concat(stdout);
      const out = bytes.toString('utf8');
      resolvePromise({
        status: status ?? (signal ? 128 : null),
        stdout: bytes,
        stderr,
        out,
        json<T>() {
          try {
            return JSON.parse(out) as T;
          } catch {
            throw new Error(`not JSON: ${out} (stderr: ${stderr})`);
          }
        },
      });
    });
    options.onSpawn?.(child);
    if (options.input !== undefined) child.stdin!.write(options.input);
    if (options.holdStdin) void options.holdStdin.finally(() => child.stdin!.end());
    else child.stdin!.end();
  });
}

/** The real `vhsm` CLI in netns `ns` (null: the host netns). */
export function vhsmCli(ns: string | null, args: readonly string[], options: RunOptions = {}): Promise<CliRun> {
  return run(ns, [process.execPath, toolPath('vhsm'), ...args], options);
}

export class VhsmWorld {
  server: ChildProcess | null = null;
  serverLog = '';
  readonly db: string;
  private readonly passwords = new Map<string, string>();

  private constructor(
    readonly world: World,
    readonly dir: string,
    private readonly serverConfig: Record<string, unknown>,
    db: string | undefined,
    private readonly env: Record<string, string>,
    private readonly adminNetns: string | null,
  ) {
    this.db = db ?? join(dir, 'vhsm.db');
  }

  static async create(options: VhsmWorldOptions): Promise<VhsmWorld> {
    // RSA key generation under emulation can outlast the 10 s default deadline.
    const world = await World.create(options.clients, { timeout_ms: 30_000 });
    const dir = mkdtempSync('/tmp/vhsm-cli-');
    const vw = new VhsmWorld(world, dir, options.serverConfig ?? {}, options.db, options.env ?? {}, options.adminInVhsmNetns ? 'vhsm' : null);
    try {
      if (options.init !== false) await vw.adminOk(['init']);
      for (const user of options.users ?? []) await vw.addUser(user);
      if (options.server !== false) await vw.startServer();
    } catch (error) {
      await vw.destroy();
      throw error;
    }
    return vw;
  }

  /** vhsm-admin on this world's DB (in the host netns: it only touches the file; or see adminInVhsmNetns). */
  admin(args: readonly string[], input?: string): Promise<CliRun> {
    return run(this.adminNetns, [process.execPath, toolPath('vhsm-admin'), '--db', this.db, ...args], { env: this.env, ...(input === undefined ? {} : { input }) });
  }

  async adminOk(args: readonly string[], input?: string): Promise<CliRun> {
    const result = await this.admin(args, input);
    if (result.status !== 0) throw new Error(`vhsm-admin ${args.join(' ')}: exit ${result.status}: ${result.stderr}`);
    return result;
  }

  /** Creates a user with a small PBKDF2 count (600k iterations take ~11 s under TCG). */
  async addUser(user: UserSpec): Promise<void> {
    const ctids = user.ctids.flatMap((ctid) => ['--ctid', String(ctid)]);
    await this.adminOk(['user', 'add', user.name, ...ctids, '--iterations', '1000', '--password-stdin'], `${user.password}\n`);
    this.rememberUser(user);
  }

  /** Keeps the password of a user the store already has (made by another host), for `as`. */
  rememberUser(user: UserSpec): void {
    this.passwords.set(user.name, user.password);
    writeFileSync(this.passwordFile(user.name), `${user.password}\n`, { mode: 0o600 });
  }

  /** A 0600 file holding the user's password (for --password-file). */
  passwordFile(name: string): string {
    return join(this.dir, `${name}.pw`);
  }

  /** A file in this world's temp dir. */
  file(name: string, content?: string | Uint8Array): string {
    const path = join(this.dir, name);
    if (content !== undefined) writeFileSync(path, content);
    return path;
  }

  /** Starts vhsm-server in the vhsm netns and waits until it is registered with the module. */
  async startServer(): Promise<void> {
    const config = join(this.dir, 'server.json');
    writeFileSync(config, JSON.stringify(this.serverConfig));
    const server = spawn(
      'ip',
      ['netns', 'exec', 'vhsm', process.execPath, toolPath('vhsm-server'), '--config', config, '--db', this.db, '--pbkdf2-iterations', '1000', '--log-level', 'warn'],
      { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...this.env } },
    );
    this.server = server;
    server.stderr!.on('data', (d: Buffer) => (this.serverLog += d.toString()));
    let exited = false;
    server.on('exit', () => (exited = true));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if ((await this.world.admin.stats()).server) return;
      if (exited) throw new Error(`vhsm-server exited before registering: ${this.serverLog}`);
      if (Date.now() > deadline) throw new Error(`vhsm-server did not register within 60 s: ${this.serverLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGTERM and wait: a clean stop. Resolves the exit status. */
  async stopServer(): Promise<number | null> {
    const server = this.server;
    if (!server) return null;
    this.server = null;
    if (server.exitCode !== null) return server.exitCode;
    const exited = new Promise<number | null>((r) => server.on('exit', (code) => r(code)));
    server.kill('SIGTERM');
    return exited;
  }

  /** The real `vhsm` CLI in client netns `ns` (null: the host netns). */
  vhsm(ns: string | null, args: readonly string[], options: RunOptions = {}): Promise<CliRun> {
    return vhsmCli(ns, args, options);
  }

  /** `vhsm` as `user`, password from its file: the common case. */
  as(user: string, ns: string, args: readonly string[], options: RunOptions = {}): Promise<CliRun> {
    return this.vhsm(ns, ['--user', user, '--password-file', this.passwordFile(user), ...args], options);
  }

  password(name: string): string {
    const password = this.passwords.get(name);
    if (password === undefined) throw new Error(`no user ${name}`);
    return password;
  }

  async destroy(): Promise<void> {
    try {
      await this.stopServer();
    } finally {
      await this.world.destroy();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
