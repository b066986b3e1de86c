/**
 * Talks to bench/softhsm/softhsm-bench.c (built and given a fresh token by
 * scripts/bench.mjs): one command line in, one JSON line out. The C process
 * is idle (blocked on stdin) while Node measures, and Node is idle (awaiting
 * the answer) while SoftHSM runs.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Throughput, Window } from './measure.js';

export interface SoftHsmSetup {
  /** The compiled driver (any PKCS#11 module: SoftHSM2, libvhsm-pkcs11.so, p11-kit-client.so). */
  readonly binary: string;
  /** The module: libsofthsm2.so, or another. */
  readonly library: string;
  /** SOFTHSM2_CONF pointing at a temp token directory (SoftHSM only). */
  readonly conf?: string;
  readonly tokenLabel: string;
  readonly pin: string;
  /** Runs the driver through this prefix (e.g. `ip netns exec ct1`). */
  readonly prefix?: readonly string[];
  /** More environment for the module (VHSM_PKCS11_CONF, P11_KIT_SERVER_ADDRESS). */
  readonly env?: Record<string, string>;
}

export type SoftHsmOp = 'p256' | 'p256sha256' | 'ed25519' | 'rsa2048' | 'rsa2048v15' | 'hmac1k' | 'aesgcm1k' | 'login';

export class SoftHsm {
  private readonly answers: string[] = [];
  private readonly waiters: ((line: string) => void)[] = [];
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (text) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(text);
      else this.answers.push(text);
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }

  /** Starts the driver and creates (or finds) the benchmark keys; `keys` says which exist. */
  static async start(setup: SoftHsmSetup): Promise<{ softhsm: SoftHsm; keys: Record<string, boolean> }> {
    const argv = [...(setup.prefix ?? []), setup.binary, setup.library, setup.tokenLabel, setup.pin];
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...(setup.conf ? { SOFTHSM2_CONF: setup.conf } : {}), ...setup.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const softhsm = new SoftHsm(child);
    const answer = await softhsm.ask('setup');
    const keys = (answer.keys ?? {}) as Record<string, number>;
    return { softhsm, keys: Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, v === 1])) };
  }

  /** `clients` threads (processes for login) in a closed loop; undefined when SoftHSM lacks the mechanism. */
  async run(op: SoftHsmOp, clients: number, window: Window): Promise<(Throughput & { failedLogins?: number }) | undefined> {
    const answer = await this.ask(`run ${op} ${clients} ${window.warmMs} ${window.ms}`);
    if (answer.unsupported) return undefined;
    const ops = Number(answer.ops);
    const seconds = Number(answer.seconds);
    return {
      ops,
      seconds,
      perSecond: ops / seconds,
      ...(answer.failedLogins !== undefined ? { failedLogins: Number(answer.failedLogins) } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin.end('quit\n');
    await new Promise((resolve) => this.child.once('exit', resolve));
  }

  private async ask(command: string): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${command}\n`);
    const text = await new Promise<string>((resolve, reject) => {
      const queued = this.answers.shift();
      if (queued !== undefined) return resolve(queued);
      const onExit = (): void => reject(new Error(`softhsm-bench exited: ${this.stderr}`));
      this.child.once('exit', onExit);
      this.waiters.push((line) => {
        this.child.off('exit', onExit);
        resolve(line);
      });
    });
    const answer = JSON.parse(text) as Record<string, unknown>;
    if (answer.error) throw new Error(`softhsm-bench: ${String(answer.error)} ${this.stderr}`);
    return answer;
  }
}
