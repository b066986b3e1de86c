/**
 * A container as LXC or Docker make one: its own network and pid
 * namespaces, with an init process (here a sleep) that is PID 1 inside.
 * Processes enter it with nsenter (network and pid namespaces), so the
 * kernel sees them as the container's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class PidContainer {
  private constructor(
    private readonly unshare: ChildProcess,
    /** Host PID of the container's init (PID 1 inside). */
    readonly initPid: number,
  ) {}

  static async start(): Promise<PidContainer> {
    const unshare = spawn('unshare', ['--net', '--pid', '--fork', '--kill-child', '--', 'sleep', '100000'], { stdio: 'ignore' });
    for (let tries = 0; tries < 200; tries++) {
      const children = readChildren(unshare.pid!);
      if (children.length === 1) return new PidContainer(unshare, children[0]!);
      await sleep(25);
    }
    unshare.kill('SIGKILL');
    throw new Error('the container init did not start');
  }

  /** Prefix that runs a command inside (nsenter forks into the pid namespace). */
  get enter(): readonly string[] {
    return ['nsenter', '-t', String(this.initPid), '-n', '-p', '--'];
  }

  /** Kills the init, and with it every process in the container's pid namespace. */
  stop(): void {
    this.unshare.kill('SIGKILL');
  }
}

function readChildren(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
