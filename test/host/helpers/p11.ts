/** Paths of the PKCS#11 build and a runner for external commands (always under a timeout). */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/test/host/helpers). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const p11Build = join(repoRoot, 'build', 'pkcs11');
/** The shipped module (kernel transport only). */
export const p11Module = join(p11Build, 'libvhsm-pkcs11.so');
/** The test build: the same code with the Unix-socket transport of the host harness. */
export const p11TestModule = join(p11Build, 'libvhsm-pkcs11-test.so');

export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly out: Buffer;
  readonly timedOut: boolean;
}

/** Runs argv without a shell; SIGKILL after timeoutMs. Never rejects. */
export function run(argv: readonly string[], options: { env?: Record<string, string>; input?: string | Buffer; timeoutMs?: number; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolvePromise) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on('error', () => undefined);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolvePromise({ status: null, stdout: '', stderr: String(error), out: Buffer.alloc(0), timedOut });
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      const bytes = Buffer.concat(out);
      resolvePromise({ status, stdout: bytes.toString('utf8'), stderr, out: bytes, timedOut });
    });
    if (options.input !== undefined) child.stdin!.write(options.input);
    child.stdin!.end();
  });
}

/** TAP lines of a C test program: one entry per "ok"/"not ok" line, and the plan. */
export function parseTap(output: string): { results: { ok: boolean; name: string }[]; planned: number | null } {
  const results: { ok: boolean; name: string }[] = [];
  let planned: number | null = null;
  for (const line of output.split('\n')) {
    const m = /^(not )?ok \d+ - (.*)$/.exec(line);
    if (m) results.push({ ok: !m[1], name: m[2]! });
    const plan = /^1\.\.(\d+)$/.exec(line);
    if (plan) planned = Number(plan[1]);
  }
  return { results, planned };
}
