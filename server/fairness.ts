/**
 * Per-container fair scheduling.
 *
 * Each container (CTID) has its own FIFO queue; queues are served round
 * robin, with a bound on tasks running at once overall and per container.
 * A flood from one container fills only its own queue (and then gets BUSY),
 * while another container's next request is started as soon as it arrives.
 *
 * What a request really waits for is the event loop: every task a container
 * starts runs its crypto synchronously, so the loop turns that carry another
 * container's request and reply are as long as the work started in them. A
 * container alone may keep many tasks in flight (batching, throughput);
 * once another container has been active within `activeWindowMs`, each gets
 * at most `maxInFlightPerContainerShared` at a time, which keeps every turn
 * short (measured: a flooding neighbour's effect on another container's p99
 * drops from ×15 at 8 to ×1.8 at 2; bench/fairness.ts).
 */
export interface FairnessOptions {
  /** Tasks running at once, all containers together. */
  readonly maxInFlight: number;
  /** Tasks running at once for one container while no other container is active. */
  readonly maxInFlightPerContainer: number;
  /** Tasks running at once for one container while others are active. */
  readonly maxInFlightPerContainerShared: number;
  /** A container counts as active this long after its last submission. */
  readonly activeWindowMs: number;
  /** Tasks waiting for one container; beyond this, submissions are refused. */
  readonly maxQueuedPerContainer: number;
}

export const DEFAULT_FAIRNESS: FairnessOptions = {
  maxInFlight: 1024,
  maxInFlightPerContainer: 32,
  maxInFlightPerContainerShared: 2,
  activeWindowMs: 50,
  maxQueuedPerContainer: 1024,
};

type Task = () => Promise<void>;

export class FairScheduler {
  private readonly queues = new Map<number, Task[]>();
  /** Containers with queued work, in round-robin order. */
  private ring: number[] = [];
  private cursor = 0;
  private readonly running = new Map<number, number>();
  /** Last submission time (performance.now()) of recently active containers. */
  private readonly lastSeen = new Map<number, number>();
  private inFlight = 0;
  private pumpScheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly options: FairnessOptions) {}

  get active(): number {
    return this.inFlight;
  }

  get queued(): number {
    let total = 0;
    for (const queue of this.queues.values()) total += queue.length;
    return total;
  }

  /** Queues `task` for `container`. False when that container's queue is full. */
  submit(container: number, task: Task): boolean {
    this.lastSeen.set(container, performance.now());
    let queue = this.queues.get(container);
    if (!queue) {
      queue = [];
      this.queues.set(container, queue);
      this.ring.push(container);
    }
    if (queue.length >= this.options.maxQueuedPerContainer) return false;
    queue.push(task);
    this.pump();
    return true;
  }

  /** Runs `fn` through the scheduler and returns its result; undefined when the queue is full. */
  run<T>(container: number, fn: () => Promise<T>): Promise<T> | undefined {
    let resolve!: (value: T) => void;
    let reject!: (error: unknown) => void;
    const result = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const accepted = this.submit(container, () => fn().then(resolve, reject));
    return accepted ? result : undefined;
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.inFlight === 0 && this.ring.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.ring.length > 0) {
      const container = this.nextRunnable();
      if (container === undefined) break;
      const queue = this.queues.get(container)!;
      const task = queue.shift()!;
      if (queue.length === 0) this.dropFromRing(container);
      this.start(container, task);
    }
    this.notifyIdle();
  }

  /** The next container in ring order that may start a task now. */
  private nextRunnable(): number | undefined {
    const limit = this.activeContainers() > 1 ? this.options.maxInFlightPerContainerShared : this.options.maxInFlightPerContainer;
    for (let scanned = 0; scanned < this.ring.length; scanned++) {
      if (this.cursor >= this.ring.length) this.cursor = 0;
      const container = this.ring[this.cursor]!;
      this.cursor += 1;
      if ((this.running.get(container) ?? 0) < limit) return container;
    }
    return undefined;
  }

  /** Containers with work queued or running, or a submission within the window; forgets older ones. */
  private activeContainers(): number {
    if (this.lastSeen.size <= 1) return this.lastSeen.size;
    const horizon = performance.now() - this.options.activeWindowMs;
    for (const [container, seen] of this.lastSeen) {
      if (seen < horizon && !this.running.has(container) && !this.queues.has(container)) this.lastSeen.delete(container);
    }
    return this.lastSeen.size;
  }

  private dropFromRing(container: number): void {
    this.queues.delete(container);
    const index = this.ring.indexOf(container);
    this.ring.splice(index, 1);
    if (index < this.cursor) this.cursor -= 1;
  }

  private start(container: number, task: Task): void {
    this.inFlight += 1;
    this.running.set(container, (this.running.get(container) ?? 0) + 1);
    let promise: Promise<void>;
    try {
      promise = task();
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise
      .catch(() => {
        // Tasks answer their own errors; nothing may escape into the scheduler.
      })
      .finally(() => {
        this.inFlight -= 1;
        const left = (this.running.get(container) ?? 1) - 1;
        if (left > 0) this.running.set(container, left);
        else this.running.delete(container);
        this.schedulePump();
      });
  }

  /** Next dispatch after pending I/O, so new arrivals from other containers join the ring first. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private notifyIdle(): void {
    if (this.inFlight !== 0 || this.ring.length !== 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
