/**
 * Streaming digest and MAC contexts of one session: init, update..., final,
 * for data larger than one 32 KiB message.
 *
 * Ids are per-session counters: a stream is only reachable through the
 * session that opened it, which is itself bound to the caller's stamp.
 * Bounded in number per session and in idle time and total lifetime;
 * dropped with the session (logout, expiry, stop). Hash state holds no key;
 * an HMAC context's key copy lives in OpenSSL and is freed with the object.
 */
import type { Hash, Hmac } from 'node:crypto';
import { VhsmFailure } from './errors.js';

export interface StreamLimits {
  readonly maxStreamsPerSession: number;
  readonly streamIdleTimeoutMs: number;
  readonly streamMaxLifetimeMs: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  maxStreamsPerSession: 16,
  streamIdleTimeoutMs: 60_000,
  streamMaxLifetimeMs: 15 * 60_000,
};

export type StreamSource =
  | { readonly kind: 'digest'; readonly algorithm: number }
  | { readonly kind: 'mac'; readonly algorithm: number; readonly keyId: string; readonly keyRowId: number };

export interface Stream {
  readonly id: number;
  readonly source: StreamSource;
  readonly context: Hash | Hmac;
  readonly createdMs: number;
  lastUsedMs: number;
}

const MAX_STREAM_ID = 0xffff_ffff;

const notFound = (): VhsmFailure => new VhsmFailure('STREAM_NOT_FOUND', 'no such stream in this session (unknown, finished, aborted or expired)');

export class StreamTable {
  private readonly streams = new Map<number, Stream>();
  private nextId = 1;

  constructor(
    private readonly limits: StreamLimits,
    private readonly clock: () => number,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  /** Registers a context; RESOURCE_EXHAUSTED when the session has too many. Returns the id. */
  open(source: StreamSource, context: Hash | Hmac): number {
    const now = this.clock();
    this.sweep(now);
    if (this.streams.size >= this.limits.maxStreamsPerSession) {
      throw new VhsmFailure('RESOURCE_EXHAUSTED', `at most ${this.limits.maxStreamsPerSession} open streams per session`);
    }
    const id = this.nextId;
    this.nextId = id >= MAX_STREAM_ID ? 1 : id + 1;
    this.streams.set(id, { id, source, context, createdMs: now, lastUsedMs: now });
    return id;
  }

  /** The live stream `id`, touched; STREAM_NOT_FOUND otherwise. */
  get(id: number): Stream {
    const stream = this.streams.get(id);
    const now = this.clock();
    if (!stream || this.expired(stream, now)) {
      this.streams.delete(id);
      throw notFound();
    }
    stream.lastUsedMs = now;
    return stream;
  }

  /** Removes and returns the live stream `id` (for final). */
  take(id: number): Stream {
    const stream = this.get(id);
    this.streams.delete(id);
    return stream;
  }

  /** Drops expired streams; returns how many. */
  sweep(now = this.clock()): number {
    let dropped = 0;
    for (const stream of [...this.streams.values()]) {
      if (this.expired(stream, now)) {
        this.streams.delete(stream.id);
        dropped += 1;
      }
    }
    return dropped;
  }

  clear(): void {
    this.streams.clear();
  }

  private expired(stream: Stream, now: number): boolean {
    return now - stream.lastUsedMs > this.limits.streamIdleTimeoutMs || now - stream.createdMs > this.limits.streamMaxLifetimeMs;
  }
}
