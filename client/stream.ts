/**
 * A streaming digest or MAC on the server: update() as often as needed
 * (large inputs are cut into chunks that fit a message), then final() or,
 * for a MAC, verify(). The context lives in the session on the server and
 * expires after a minute without use.
 */
import type { OperationName, pb } from '../proto/index.js';
import { VhsmError } from './errors.js';
import type { CallOptions } from './types.js';

/** Data bytes per message: the 32 KiB payload minus room for the other fields. */
export const STREAM_CHUNK_BYTES = 32 * 1024 - 256;

type RequestBody<K extends OperationName> = NonNullable<pb.Request.$Properties[K]>;
type ResultBody<K extends OperationName> = NonNullable<pb.Response[K]>;
/** @internal The session's call, bound. */
export type SessionCall = <K extends OperationName>(op: K, body: RequestBody<K>, options?: CallOptions) => Promise<ResultBody<K>>;

/** Splits `data` into views of at most STREAM_CHUNK_BYTES (one empty chunk for empty data). */
export function* chunksOf(data: Uint8Array): Generator<Uint8Array> {
  if (data.length === 0) yield data;
  for (let offset = 0; offset < data.length; offset += STREAM_CHUNK_BYTES) yield data.subarray(offset, offset + STREAM_CHUNK_BYTES);
}

export class VhsmStream {
  private finished = false;

  /** @internal Created by VhsmSession.digestInit / macInit. */
  constructor(
    private readonly call: SessionCall,
    readonly streamId: number,
    readonly kind: 'digest' | 'mac',
  ) {}

  /** False once final(), verify() or abort() was called. */
  get open(): boolean {
    return !this.finished;
  }

  async update(data: Uint8Array, options?: CallOptions): Promise<void> {
    this.checkOpen();
    if (data.length === 0) return;
    for (const chunk of chunksOf(data)) await this.call('streamUpdate', { streamId: this.streamId, data: chunk }, options);
  }

  /** The digest or MAC over everything sent, `data` included. Ends the stream. */
  async final(data: Uint8Array = new Uint8Array(0), options?: CallOptions): Promise<Uint8Array> {
    const result = await this.finish(data, new Uint8Array(0), options);
    return new Uint8Array(result.output ?? new Uint8Array(0));
  }

  /** MAC streams: compares with `expectedMac` on the server, in constant time. Ends the stream. */
  async verify(expectedMac: Uint8Array, data: Uint8Array = new Uint8Array(0), options?: CallOptions): Promise<boolean> {
    if (this.kind !== 'mac') throw new VhsmError('INVALID_ARGUMENT', 'verify applies to MAC streams');
    if (expectedMac.length === 0) throw new VhsmError('INVALID_ARGUMENT', 'expectedMac is empty');
    const result = await this.finish(data, expectedMac, options);
    return result.valid === true;
  }

  /** Drops the context on the server. Idempotent. */
  async abort(options?: CallOptions): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.call('streamAbort', { streamId: this.streamId }, options);
  }

  private async finish(data: Uint8Array, expectedMac: Uint8Array, options?: CallOptions) {
    this.checkOpen();
    const tail = data.length > STREAM_CHUNK_BYTES ? data.subarray(data.length - (data.length % STREAM_CHUNK_BYTES || STREAM_CHUNK_BYTES)) : data;
    await this.update(data.subarray(0, data.length - tail.length), options);
    this.finished = true;
    return this.call('streamFinal', { streamId: this.streamId, data: tail, expectedMac }, options);
  }

  private checkOpen(): void {
    if (this.finished) throw new VhsmError('STREAM_NOT_FOUND', 'this stream has ended');
  }
}
