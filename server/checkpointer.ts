/**
 * Moves WAL checkpoints off the event loop. SQLite's automatic checkpoint
 * runs inside whichever commit crosses 1,000 WAL pages: it copies those
 * pages into the database and fsyncs twice, and the loop waits (measured:
 * it alone lifted a quiet container's p99 under a neighbour's flood from
 * 0.7 ms to 2 ms, bench/fairness.ts). Here the server's connection has
 * automatic checkpoints off and a worker thread with its own connection
 * checkpoints every `everyCommits` commits, or `idleMs` after the last one.
 * The worker starts with the first checkpoint, so a server that commits
 * little (tests, tools) never starts a thread; closing the DB checkpoints.
 *
 * SQLite starts the WAL over only when a write finds every frame copied;
 * under steady load a commit always lands while the worker copies, so the
 * WAL would grow forever. Once it passes `maxWalFrames`, the server's
 * connection copies the few frames left itself, between two commits, and
 * the next commit starts the WAL over (`journal_size_limit` then trims the
 * file). That costs the loop one small checkpoint per WAL cycle instead of
 * one big one.
 *
 * If the worker fails, or its checkpoints fail repeatedly, the connection
 * goes back to automatic checkpoints: slower, never unbounded WAL growth.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { CheckpointReply, CheckpointRequest } from './checkpoint-worker.js';
import type { Logger } from './log.js';
import type { Store } from './storage.js';

export interface CheckpointerOptions {
  readonly everyCommits: number;
  readonly idleMs: number;
  /** WAL size (frames, 4 KiB each) at which the server's connection finishes a cycle itself. */
  readonly maxWalFrames: number;
}

/**
 * maxWalFrames: each catch-up costs the loop 1–5 ms (two fsyncs), so cycles
 * are long: at 4,096 frames a flood caused one every ~0.3 s, enough to show
 * in a neighbour's p99.
 */
export const DEFAULT_CHECKPOINTER: CheckpointerOptions = { everyCommits: 256, idleMs: 1000, maxWalFrames: 16384 };

/** Consecutive failed worker checkpoints before falling back to SQLite's own. */
const MAX_FAILURES = 3;
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024; // what the WAL is trimmed to when it starts over

const SQLITE_DEFAULT_AUTOCHECKPOINT = 1000;

export class Checkpointer {
  private commitsSince = 0;
  private inFlight = false;
  private timer: NodeJS.Timeout | undefined;
  private state: 'running' | 'failed' | 'closed' = 'running';
  private worker: Worker | undefined;
  private checkpoints = 0;
  private failures = 0;
  private catchUps = 0;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly options: CheckpointerOptions = DEFAULT_CHECKPOINTER,
  ) {
    store.db.pragma('wal_autocheckpoint = 0');
    store.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
  }

  /** Completed worker checkpoints (for tests and stats). */
  get completed(): number {
    return this.checkpoints;
  }

  /** Cycles finished by the server's own connection (for tests and stats). */
  get caughtUp(): number {
    return this.catchUps;
  }

  /** Called after every commit of the server's connection. */
  committed(): void {
    if (this.state !== 'running') return;
    this.commitsSince += 1;
    if (this.commitsSince >= this.options.everyCommits) this.request();
    else this.armIdleTimer();
  }

  /** Lets a running checkpoint finish and stops the worker. Closing the DB afterwards checkpoints the rest. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasRunning = this.state === 'running';
    this.state = 'closed';
    clearTimeout(this.timer);
    const worker = this.worker;
    if (!wasRunning || !worker) return;
    const exited = once(worker, 'exit');
    worker.postMessage('close' satisfies CheckpointRequest);
    try {
      await exited;
    } catch {
      // An 'error' event instead of a clean exit: the thread is gone either way.
    }
  }

  private armIdleTimer(): void {
    if (this.timer || !this.worker || this.commitsSince === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.request();
    }, this.options.idleMs);
    this.timer.unref();
  }

  private request(): void {
    if (this.state !== 'running' || this.inFlight || this.commitsSince === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight = true;
    this.commitsSince = 0;
    this.startedWorker().postMessage('checkpoint' satisfies CheckpointRequest);
  }

  private startedWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./checkpoint-worker.js', import.meta.url), { workerData: { path: this.store.path } });
    worker.on('message', (reply: CheckpointReply) => this.onReply(reply));
    worker.on('error', (error) => this.fail(error.message));
    worker.on('exit', (code) => {
      if (this.state === 'running') this.fail(`checkpoint worker exited with code ${code}`);
    });
    this.worker = worker;
    return worker;
  }

  private onReply(reply: CheckpointReply): void {
    this.inFlight = false;
    if (this.state !== 'running') return;
    if (!reply.ok) {
      this.failures += 1;
      this.logger.log('warn', 'WAL checkpoint failed', { error: reply.error, failures: this.failures });
      if (this.failures >= MAX_FAILURES) {
        this.fail(`${this.failures} checkpoints failed in a row`);
        return;
      }
    } else {
      this.failures = 0;
      this.checkpoints += 1;
      if (reply.walFrames >= this.options.maxWalFrames) this.catchUp();
    }
    if (this.commitsSince >= this.options.everyCommits) this.request();
    else this.armIdleTimer();
  }

  /**
   * Copies what the worker could not (the commits that landed while it ran)
   * on the server's connection, where no commit can land meanwhile: the next
   * write then starts the WAL over. Runs between group commits (message
   * events never interrupt one).
   */
  private catchUp(): void {
    try {
      this.store.db.pragma('wal_checkpoint(PASSIVE)');
      this.catchUps += 1;
    } catch (error) {
      this.logger.log('warn', 'WAL checkpoint on the server connection failed', { error: (error as Error).message });
    }
  }

  private fail(reason: string): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    clearTimeout(this.timer);
    this.logger.log('error', 'checkpoint worker failed; SQLite checkpoints on the event loop again', { error: reason });
    if (this.store.db.open) this.store.db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
    // A worker whose checkpoints keep failing is still alive and would keep the process from exiting.
    void this.worker?.terminate().catch(() => undefined);
  }
}
