/**
 * Streaming digest and MAC: init, update..., final (or abort). Contexts live
 * in the session (server/streams.ts).
 */
import { KEY_USAGES } from '../../proto/index.js';
import { digestMechanism, macsEqual } from '../crypto/engine.js';
import { VhsmFailure } from '../errors.js';
import type { Handler, SessionOpContext } from '../context.js';
import type { Stream } from '../streams.js';
import { macFor, noteUse, usableKey } from './common.js';

function noteStream(ctx: SessionOpContext, stream: Stream): void {
  if (stream.source.kind === 'mac') ctx.audit.keyId = stream.source.keyId;
}

export const digestInit: Handler<'digestInit'> = {
  needsSession: true,
  async run(ctx, request) {
    const mechanism = digestMechanism(request.algorithm);
    if (!mechanism) throw new VhsmFailure('UNSUPPORTED_ALGORITHM', 'digest algorithm not supported');
    const streamId = ctx.session.streams.open({ kind: 'digest', algorithm: mechanism.algorithm }, mechanism.start());
    return { digestInit: { streamId } };
  },
};

export const macInit: Handler<'macInit'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await usableKey(ctx, request.keyId, KEY_USAGES.mac);
    const mechanism = macFor(key, request.algorithm);
    const source = { kind: 'mac', algorithm: mechanism.algorithm, keyId: key.keyId, keyRowId: key.rowId } as const;
    const streamId = ctx.session.streams.open(source, mechanism.start(key.loaded));
    return { macInit: { streamId } };
  },
};

export const streamUpdate: Handler<'streamUpdate'> = {
  needsSession: true,
  async run(ctx, request) {
    const stream = ctx.session.streams.get(request.streamId);
    noteStream(ctx, stream);
    stream.context.update(request.data);
    return { streamUpdate: {} };
  },
};

export const streamFinal: Handler<'streamFinal'> = {
  needsSession: true,
  async run(ctx, request) {
    const { source } = ctx.session.streams.get(request.streamId);
    if (request.expectedMac && source.kind !== 'mac') throw new VhsmFailure('INVALID_ARGUMENT', 'expected_mac applies to MAC streams only');
    const stream = ctx.session.streams.take(request.streamId);
    noteStream(ctx, stream);
    if (source.kind === 'mac') {
      // The key may have been deleted (or deleted and re-created) since init.
      const key = await ctx.services.keys.load(ctx.session, source.keyId);
      if (key.rowId !== source.keyRowId) throw new VhsmFailure('KEY_NOT_FOUND', `key ${source.keyId} changed since the stream began`);
      noteUse(ctx, key);
    }
    const output = stream.context.update(request.data).digest();
    if (request.expectedMac) return { streamFinal: { valid: macsEqual(output, request.expectedMac) } };
    return { streamFinal: { output } };
  },
};

export const streamAbort: Handler<'streamAbort'> = {
  needsSession: true,
  async run(ctx, request) {
    noteStream(ctx, ctx.session.streams.take(request.streamId));
    return { streamAbort: {} };
  },
};
