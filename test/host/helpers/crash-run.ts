/**
 * Parent side of crash-child.js: runs it, collects what it acknowledged, and
 * SIGKILLs it once `killAfter` key creations were acknowledged.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const child = join(dirname(fileURLToPath(import.meta.url)), 'crash-child.js');

export interface CrashRun {
  /** Key ids whose creation the child's client saw acknowledged, in order. */
  readonly acknowledged: string[];
  /** Signatures the child's client saw acknowledged. */
  readonly signed: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The child printed `done`: it created every key before the kill. */
  readonly finished: boolean;
}

/** `node crash-child.js DB COUNT [SERVER_ID]`, killed with SIGKILL after `killAfter` acknowledged creations. */
export function runCrashChild(db: string, count: number, killAfter: number, serverId?: string): Promise<CrashRun> {
  const args = [child, db, String(count), ...(serverId === undefined ? [] : [serverId])];
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const acknowledged: string[] = [];
    let signed = 0;
    let finished = false;
    let buffered = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('crash-')) acknowledged.push(line);
        if (line === 'signed') signed += 1;
        if (line === 'done') finished = true;
      }
      if (acknowledged.length >= killAfter && proc.exitCode === null && !proc.killed) proc.kill('SIGKILL');
    });
    proc.on('error', reject);
    proc.on('close', (code, signal) => resolve({ acknowledged, signed, code, signal, finished }));
  });
}
