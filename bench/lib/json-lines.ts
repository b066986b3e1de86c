/**
 * A benchmark helper process spoken to in lines: one command line in on its
 * stdin, one JSON object back per line on its stdout (the PKCS#11 driver,
 * the remote VHSM clients). The helper idles while Node measures, and the
 * other way round.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export class JsonLineChild {
  private readonly answers: string[] = [];
  private readonly waiters: ((line: string) => void)[] = [];
  /** What the helper wrote to stderr, if it was piped: for error messages. */
  stderr = '';

  /** `child` needs piped stdin and stdout; `name` prefixes errors. */
  constructor(
    private readonly child: ChildProcess,
    private readonly name: string,
  ) {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(text);
      else this.answers.push(text);
    });
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }

  /** Sends `command` (one line) and returns the next answer. */
  ask(command: string): Promise<Record<string, unknown>> {
    this.child.stdin!.write(`${command}\n`);
    return this.next();
  }

  /** The next answer; rejects if the helper exits first. */
  async next(): Promise<Record<string, unknown>> {
    const text = await new Promise<string>((resolve, reject) => {
      const queued = this.answers.shift();
      if (queued !== undefined) return resolve(queued);
      const onExit = (): void => reject(new Error(`${this.name} exited: ${this.stderr}`));
      this.child.once('exit', onExit);
      this.waiters.push((line) => {
        this.child.off('exit', onExit);
        resolve(line);
      });
    });
    return JSON.parse(text) as Record<string, unknown>;
  }

  /** Asks the helper to quit and waits for it to exit. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin!.end('quit\n');
    await new Promise((resolve) => this.child.once('exit', resolve));
  }
}
