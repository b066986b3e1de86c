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
 * If the worker fails, the connection goes back to automatic checkpoints:
 * slower, never unbounded WAL growth.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { CheckpointReply, CheckpointRequest } from './checkpoint-worker.js';
import type { Logger } from './log.js';
import type { Store } from './storage.js';

export interface CheckpointerOptions {
  readonly everyCommits: number;
  readonly idleMs: number;
}

export const DEFAULT_CHECKPOINTER: CheckpointerOptions = { everyCommits: 256, idleMs: 1000 };

const SQLITE_DEFAULT_AUTOCHECKPOINT = 1000;

export class Checkpointer {
  private commitsSince = 0;
  private inFlight = false;
  private timer: NodeJS.Timeout | undefined;
  private state: 'running' | 'failed' | 'closed' = 'running';
  private worker: Worker | undefined;
  private checkpoints = 0;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly options: CheckpointerOptions = DEFAULT_CHECKPOINTER,
  ) {
    store.db.pragma('wal_autocheckpoint = 0');
  }

  /** Completed checkpoints (for tests and stats). */
  get completed(): number {
    return this.checkpoints;
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
    await exited;
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
    if (!reply.ok) this.logger.log('warn', 'WAL checkpoint failed; retrying with the next one', { error: reply.error });
    else this.checkpoints += 1;
    if (this.commitsSince >= this.options.everyCommits) this.request();
    else this.armIdleTimer();
  }

  private fail(reason: string): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    clearTimeout(this.timer);
    this.logger.log('error', 'checkpoint worker failed; SQLite checkpoints on the event loop again', { error: reason });
    if (this.store.db.open) this.store.db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
  }
}
