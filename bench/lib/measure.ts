/**
 * Measuring helpers shared by the benchmark sections: closed-loop
 * throughput with a warm-up, latency percentiles, and the JSON-lines
 * channel to scripts/bench.mjs (progress and results on stdout).
 */
import { performance } from 'node:perf_hooks';

export interface Throughput {
  /** Operations completed inside the measured window. */
  readonly ops: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** 99th percentile latency (ms) of the counted operations, where measured. */
  readonly p99?: number;
}

export interface Window {
  /** Run (not counted) this long first: caches, JIT, pool threads. */
  readonly warmMs: number;
  /** Then count completions for this long. */
  readonly ms: number;
}

/**
 * `clients` loops, each awaiting `op(client)` back to back (one request in
 * flight per client, as a real client does). Counts the operations that
 * complete inside [warm-up end, end]; loops stop issuing at the end and the
 * ones in flight are awaited, not counted.
 */
export async function closedLoop(clients: number, window: Window, op: (client: number) => Promise<unknown>): Promise<Throughput> {
  const start = performance.now();
  const warmEnd = start + window.warmMs;
  const end = warmEnd + window.ms;
  let counted = 0;
  const latencies = new Latencies();
  const loop = async (client: number): Promise<void> => {
    for (let began = performance.now(); began < end; ) {
      await op(client);
      const t = performance.now();
      if (t >= warmEnd && t <= end) {
        counted += 1;
        latencies.add(t - began);
      }
      began = t;
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => loop(i)));
  const seconds = window.ms / 1000;
  return { ops: counted, seconds, perSecond: counted / seconds, p99: round3(latencies.quantile(0.99)) };
}

/**
 * For slow operations (a 600k-iteration login takes ~0.2 s), where a window
 * would count too few completions: each client runs one unmeasured
 * operation, then `perClient` more back to back; throughput = all measured
 * operations / the time until the last one ends.
 */
export async function fixedCount(clients: number, perClient: number, op: (client: number) => Promise<unknown>): Promise<Throughput> {
  await Promise.all(Array.from({ length: clients }, (_, i) => op(i)));
  const start = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      for (let n = 0; n < perClient; n++) await op(i);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const ops = clients * perClient;
  return { ops, seconds, perSecond: ops / seconds };
}

/** A synchronous operation in a tight loop on this thread (what an event-loop server can do at most). */
export function syncLoop(window: Window, op: () => unknown): Throughput {
  const start = performance.now();
  const warmEnd = start + window.warmMs;
  const end = warmEnd + window.ms;
  let counted = 0;
  for (;;) {
    op();
    const t = performance.now();
    if (t > end) break;
    if (t >= warmEnd) counted += 1;
  }
  const seconds = window.ms / 1000;
  return { ops: counted, seconds, perSecond: counted / seconds };
}

/** Latencies in milliseconds. */
export class Latencies {
  private readonly samples: number[] = [];

  add(ms: number): void {
    this.samples.push(ms);
  }

  get count(): number {
    return this.samples.length;
  }

  /** q in [0, 1]; nearest-rank. */
  quantile(q: number): number {
    if (this.samples.length === 0) return Number.NaN;
    const sorted = [...this.samples].sort((a, b) => a - b);
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[rank]!;
  }

  summary(): LatencySummary {
    return {
      count: this.count,
      p50: round3(this.quantile(0.5)),
      p90: round3(this.quantile(0.9)),
      p99: round3(this.quantile(0.99)),
      max: round3(this.quantile(1)),
    };
  }
}

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Times one call. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- the channel to scripts/bench.mjs ----

function line(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
}

/** A progress line for the driver's status line. */
export function progress(text: string): void {
  line({ type: 'progress', text });
}

/** One result record; the driver collects them into bench-results.json. */
export function result(section: string, data: Record<string, unknown>): void {
  line({ type: 'result', section, data });
}

/** Options from the driver: argv[2] is a JSON object. */
export function options<T extends object>(defaults: T): T {
  const given = process.argv[2] ? (JSON.parse(process.argv[2]) as Partial<T>) : {};
  return { ...defaults, ...given };
}

/** Runs main, reporting a crash as a result the driver shows. */
export function runMain(section: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      line({ type: 'error', section, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      process.exit(1);
    },
  );
}
