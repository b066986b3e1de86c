/**
 * Off-loop durability for the server's SQLite connection.
 *
 * The server's connection commits with `synchronous = NORMAL`: a commit
 * writes its frames to the WAL (so it survives kill -9 of the server) but
 * does not fsync. This module makes the WAL durable with `fdatasync` on the
 * libuv pool, so a disk flush (0.2–10 ms) never blocks the event loop, and
 * one flush covers every commit written before it started. With a WAL
 * fsynced after the commit the guarantee equals `synchronous = FULL`: SQLite
 * itself syncs the WAL before a checkpoint and the database after it.
 *
 * Commits call `written()`; `durable()` resolves once everything written
 * before the call is on disk; `soon()` asks for a flush within `maxDelayMs`
 * without anyone waiting for it.
 */
import { closeSync, constants, fdatasync, fsyncSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export type SyncFunction = (fd: number, done: (error: Error | null) => void) => void;

export interface WalSyncOptions {
  /** Upper bound on how long a commit nobody waits for stays unflushed. */
  readonly maxDelayMs: number;
  /** The flush itself; `fdatasync` except in tests that need to hold it. */
  readonly sync?: SyncFunction;
}

interface Waiter {
  readonly generation: number;
  resolve(): void;
  reject(error: Error): void;
}

export class WalSync {
  private writtenGeneration = 0;
  private syncedGeneration = 0;
  private inFlight = false;
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly sync: SyncFunction;
  private idleWaiters: (() => void)[] = [];

  private constructor(
    private readonly fd: number,
    private readonly options: WalSyncOptions,
  ) {
    this.sync = options.sync ?? fdatasync;
  }

  /**
   * Opens `${dbPath}-wal` (which exists once the connection is in WAL mode)
   * and syncs its directory once, so the WAL's own directory entry is durable.
   */
  static open(dbPath: string, options: WalSyncOptions): WalSync {
    const fd = openSync(`${dbPath}-wal`, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const dir = openSync(dirname(dbPath), constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return new WalSync(fd, options);
  }

  /** Records that a commit has been written to the WAL; returns its generation. */
  written(): number {
    this.writtenGeneration += 1;
    return this.writtenGeneration;
  }

  /** Whether the commit of `generation` (from written()) is on disk. */
  isDurable(generation: number): boolean {
    return generation <= this.syncedGeneration;
  }

  /** The flush failure, once one happened: nothing written can be called durable after it. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** Resolves when every commit written so far is on disk. */
  durable(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('the WAL flusher is closed'));
    const generation = this.writtenGeneration;
    if (generation <= this.syncedGeneration) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ generation, resolve, reject });
      this.start();
    });
  }

  /** Flushes what has been written within `maxDelayMs`; nobody waits for it. */
  soon(): void {
    if (this.timer || this.inFlight || this.failure || this.closed) return;
    if (this.writtenGeneration <= this.syncedGeneration) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, this.options.maxDelayMs);
  }

  /** Flushes what is left, waits for it, and closes the file. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.failure) await this.durable().catch(() => undefined);
      while (this.inFlight) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      this.closed = true;
      clearTimeout(this.timer);
      this.timer = undefined;
      closeSync(this.fd);
    })();
    return this.closing;
  }

  private start(): void {
    if (this.inFlight || this.failure || this.closed) return;
    const target = this.writtenGeneration;
    if (target <= this.syncedGeneration) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight = true;
    this.sync(this.fd, (error) => {
      this.inFlight = false;
      if (error) {
        // After a failed fsync the kernel may have dropped the dirty pages:
        // nothing written so far can be called durable again.
        this.failure = new Error(`flushing the WAL failed: ${error.message}`);
        for (const waiter of this.waiters) waiter.reject(this.failure);
        this.waiters = [];
      } else {
        this.syncedGeneration = target;
        const still: Waiter[] = [];
        for (const waiter of this.waiters) {
          if (waiter.generation <= target) waiter.resolve();
          else still.push(waiter);
        }
        this.waiters = still;
        if (still.length > 0) this.start();
        else this.soon();
      }
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of idle) resolve();
    });
  }
}
