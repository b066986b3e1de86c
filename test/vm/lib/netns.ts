/**
 * Network namespaces as containers: `ip netns add NAME` creates one that
 * outlives its processes; agents run in it with `ip netns exec`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export function createNetns(name: string): string {
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return `/run/netns/${name}`;
}

export function deleteNetns(name: string): void {
  execFileSync('ip', ['netns', 'delete', name], { stdio: 'pipe' });
}

export interface AgentOptions {
  /** Run in a new PID namespace too, so the agent is PID 1 there (as in a real container). */
  readonly newPidNs?: boolean;
  /**
   * Run as uid/gid 1000 in a new user and pid namespace of its own, where it
   * is root and PID 1: what any unprivileged process can make.
   */
  readonly nestedUnprivileged?: boolean;
  /** Command prefix that puts the agent into its container (instead of `ip netns exec NS`). */
  readonly enter?: readonly string[];
  /** Shell commands run (by sh, in the agent's namespaces) just before it starts, as its parent. */
  readonly preamble?: string;
  /** Run as this uid/gid inside a new user namespace that maps it (unprivileged container). */
  readonly unprivileged?: boolean;
  readonly env?: Record<string, string>;
}

/**
 * A node script from dist/test/vm/agents running in namespace `ns`.
 * Agents speak JSON lines on stdout; `next()` resolves the next message.
 */
export class Agent {
  readonly child: ChildProcess;
  private readonly messages: unknown[] = [];
  private readonly waiters: Array<(m: unknown) => void> = [];
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(ns: string | null, script: string, args: string[] = [], options: AgentOptions = {}) {
    // An agent name, or a path to any node script (e.g. dist/tools/vhsm-server.js).
    const node = [process.execPath, script.endsWith('.js') ? script : `dist/test/vm/agents/${script}.js`, ...args];
    let argv = node;
    if (options.preamble) argv = ['sh', '-c', `${options.preamble}; "$@"`, 'sh', ...argv];
    if (options.unprivileged) argv = ['unshare', '--user', '--map-user=1000', '--map-group=1000', '--', ...argv];
    if (options.nestedUnprivileged) {
      argv = ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', 'unshare', '--user', '--map-root-user', '--pid', '--fork', '--kill-child', '--', ...argv];
    }
    if (options.newPidNs) argv = ['unshare', '--pid', '--fork', '--kill-child', '--', ...argv];
    if (options.enter) argv = [...options.enter, ...argv];
    else if (ns) argv = ['ip', 'netns', 'exec', ns, ...argv];
    this.child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        msg = { type: 'noise', line };
      }
      const waiter = this.waiters.shift();
      if (waiter) waiter(msg);
      else this.messages.push(msg);
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  /** The next JSON message, or a rejection after `timeoutMs`. */
  next<T = Record<string, unknown>>(timeoutMs = 120_000): Promise<T> {
    const queued = this.messages.shift();
    if (queued !== undefined) return Promise.resolve(queued as T);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent: no message in ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.waiters.push((m) => {
        clearTimeout(timer);
        resolve(m as T);
      });
    });
  }

  /** Waits for a message of the given type (skipping others). */
  async expect<T = Record<string, unknown>>(type: string, timeoutMs = 120_000): Promise<T> {
    for (;;) {
      const m = (await this.next(timeoutMs)) as { type?: string };
      if (m.type === type) return m as T;
      if (m.type === 'fatal') throw new Error(`agent failed: ${JSON.stringify(m)}; stderr: ${this.stderr}`);
    }
  }

  send(message: unknown): void {
    this.child.stdin!.write(`${JSON.stringify(message)}\n`);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    this.child.kill(signal);
    return this.exited;
  }
}
