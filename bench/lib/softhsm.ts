/**
 * Talks to bench/softhsm/softhsm-bench.c (built and given a fresh token by
 * scripts/bench.mjs) through a JsonLineChild, and starts the `p11-kit
 * server` that isolates a token in its own process.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { JsonLineChild } from './json-lines.js';
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
  private constructor(private readonly channel: JsonLineChild) {}

  /** Starts the driver and creates (or finds) the benchmark keys; `keys` says which exist. */
  static async start(setup: SoftHsmSetup): Promise<{ softhsm: SoftHsm; keys: Record<string, boolean> }> {
    const argv = [...(setup.prefix ?? []), setup.binary, setup.library, setup.tokenLabel, setup.pin];
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...(setup.conf ? { SOFTHSM2_CONF: setup.conf } : {}), ...setup.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const softhsm = new SoftHsm(new JsonLineChild(child, 'softhsm-bench'));
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

  close(): Promise<void> {
    return this.channel.close();
  }

  private async ask(command: string): Promise<Record<string, unknown>> {
    const answer = await this.channel.ask(command);
    if (answer.error) throw new Error(`softhsm-bench: ${String(answer.error)} ${this.channel.stderr}`);
    return answer;
  }
}

/**
 * `p11-kit server` serving the token labelled `token` of `softhsmLibrary`
 * from its own process (keys isolated there), on a socket in `dir`; the
 * driver reaches it by loading P11KIT_CLIENT with `env`.
 */
export async function startP11KitServer(softhsmLibrary: string, conf: string, dir: string, token: string): Promise<{ env: Record<string, string>; stop(): void }> {
  const server = spawn('p11-kit', ['server', '-f', '--provider', softhsmLibrary, '-n', join(dir, 'p11-kit.sock'), `pkcs11:token=${token}`], {
    env: { ...process.env, SOFTHSM2_CONF: conf, XDG_RUNTIME_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  server.stdout.on('data', (d: Buffer) => (out += d.toString()));
  server.stderr.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 300 && !out.includes('P11_KIT_SERVER_ADDRESS=') && server.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
  const address = /P11_KIT_SERVER_ADDRESS=([^;\s]+)/.exec(out)?.[1];
  if (!address) {
    server.kill('SIGTERM');
    throw new Error(`p11-kit server did not start: ${out}`);
  }
  return { env: { P11_KIT_SERVER_ADDRESS: address }, stop: () => void server.kill('SIGTERM') };
}

/** p11-kit's client module: PKCS#11 calls forwarded to a `p11-kit server`. */
export const P11KIT_CLIENT = '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so';
