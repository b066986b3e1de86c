/**
 * Login sessions.
 *
 * A session id is 128 random bits, usable only from the process that
 * logged in: (CTID, netns cookie, PID, process start time), all stamped by
 * the kernel. The start time tells a later process that got the same PID
 * from the one that logged in. The table is keyed by
 * SHA-256(session id || ctid || cookie || pid || start), so a lookup from
 * anywhere else simply finds nothing — the same answer as a wrong id, in the
 * same time. The plain id is never stored or logged.
 *
 * A session holds the user's authentication key (to wrap new keys and
 * unwrap stored ones), a cache of unwrapped keys as KeyObjects, and its
 * streaming digest/MAC contexts. Logout, idle expiry and server stop wipe
 * all three.
 */
import { createHash, randomBytes } from 'node:crypto';
import { SESSION_ID_BYTES } from '../proto/index.js';
import type { SenderIdentity } from '../transport/types.js';
import type { LoadedKey } from './crypto/engine.js';
import { VhsmFailure } from './errors.js';
import { DEFAULT_STREAM_LIMITS, StreamTable, type StreamLimits } from './streams.js';

/** An unwrapped key cached in a session, with the metadata its AAD authenticated. */
export interface CachedKey {
  /** keys.id: a deleted and re-created key gets a new one, so stale cache entries never match. */
  readonly rowId: number;
  readonly keyId: string;
  readonly keyType: number;
  readonly usages: number;
  readonly extractable: boolean;
  readonly loaded: LoadedKey;
}

export interface Session {
  readonly userId: number;
  readonly username: string;
  readonly ctid: number;
  readonly pid: number;
  readonly authKey: Buffer;
  readonly keys: Map<string, CachedKey>;
  /** Streaming digest/MAC contexts. */
  readonly streams: StreamTable;
  lastActiveMs: number;
}

export interface SessionLimits extends StreamLimits {
  readonly idleTimeoutMs: number;
  readonly maxSessions: number;
  readonly maxSessionsPerContainer: number;
  readonly maxCachedKeysPerSession: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  idleTimeoutMs: 15 * 60_000,
  maxSessions: 10_000,
  maxSessionsPerContainer: 1_000,
  maxCachedKeysPerSession: 1_000,
  ...DEFAULT_STREAM_LIMITS,
};

interface Entry {
  readonly tableKey: string;
  readonly session: Session;
}

function tableKey(sessionId: Uint8Array, sender: SenderIdentity): string {
  const stamp = Buffer.alloc(24);
  stamp.writeUInt32BE(sender.ctid >>> 0, 0);
  stamp.writeBigUInt64BE(BigInt.asUintN(64, sender.netnsCookie), 4);
  stamp.writeUInt32BE(sender.pid >>> 0, 12);
  stamp.writeBigUInt64BE(BigInt.asUintN(64, sender.procStart), 16);
  return createHash('sha256').update(sessionId).update(stamp).digest('base64');
}

export class SessionTable {
  private readonly entries = new Map<string, Entry>();
  private readonly perContainer = new Map<number, number>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly limits: SessionLimits,
    private readonly clock: () => number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Open streaming contexts over all sessions. */
  get streamCount(): number {
    let count = 0;
    for (const { session } of this.entries.values()) count += session.streams.size;
    return count;
  }

  /** Fails with RESOURCE_EXHAUSTED when `sender` may not open another session. */
  checkCapacity(sender: SenderIdentity): void {
    if (this.entries.size >= this.limits.maxSessions) throw new VhsmFailure('RESOURCE_EXHAUSTED', 'too many sessions');
    if ((this.perContainer.get(sender.ctid) ?? 0) >= this.limits.maxSessionsPerContainer) {
      throw new VhsmFailure('RESOURCE_EXHAUSTED', 'too many sessions for this container');
    }
  }

  /** Opens a session bound to `sender`; takes ownership of `authKey`. Returns the id (caller's copy). */
  open(sender: SenderIdentity, user: { userId: number; username: string }, authKey: Buffer): Uint8Array {
    try {
      this.checkCapacity(sender);
    } catch (error) {
      authKey.fill(0);
      throw error;
    }
    const sessionId = randomBytes(SESSION_ID_BYTES);
    const key = tableKey(sessionId, sender);
    const session: Session = {
      userId: user.userId,
      username: user.username,
      ctid: sender.ctid,
      pid: sender.pid,
      authKey,
      keys: new Map(),
      streams: new StreamTable(this.limits, this.clock),
      lastActiveMs: this.clock(),
    };
    this.entries.set(key, { tableKey: key, session });
    this.perContainer.set(sender.ctid, (this.perContainer.get(sender.ctid) ?? 0) + 1);
    return sessionId;
  }

  /** The live session for this id and sender, or undefined (unknown, elsewhere, or expired). */
  lookup(sessionId: Uint8Array, sender: SenderIdentity): Session | undefined {
    if (sessionId.length !== SESSION_ID_BYTES) return undefined;
    const entry = this.entries.get(tableKey(sessionId, sender));
    if (!entry) return undefined;
    const now = this.clock();
    if (now - entry.session.lastActiveMs > this.limits.idleTimeoutMs) {
      this.remove(entry);
      return undefined;
    }
    entry.session.lastActiveMs = now;
    return entry.session;
  }

  /** Ends a session and wipes its keys. */
  close(sessionId: Uint8Array, sender: SenderIdentity): boolean {
    if (sessionId.length !== SESSION_ID_BYTES) return false;
    const entry = this.entries.get(tableKey(sessionId, sender));
    if (!entry) return false;
    this.remove(entry);
    return true;
  }

  /** Ends every session of `session`'s user bound elsewhere too: used when the user is gone. */
  closeSession(session: Session): void {
    for (const entry of this.entries.values()) if (entry.session === session) this.remove(entry);
  }

  /** Drops a key from every cache of that user's sessions (after delete). */
  forgetKey(userId: number, keyId: string): void {
    for (const { session } of this.entries.values()) if (session.userId === userId) session.keys.delete(keyId);
  }

  /** Expires idle sessions; returns how many ended. */
  sweep(): number {
    const now = this.clock();
    let ended = 0;
    for (const entry of [...this.entries.values()]) {
      if (now - entry.session.lastActiveMs > this.limits.idleTimeoutMs) {
        this.remove(entry);
        ended += 1;
      } else {
        entry.session.streams.sweep(now);
      }
    }
    return ended;
  }

  startSweeping(): void {
    if (this.sweeper) return;
    const every = Math.max(50, Math.min(this.limits.idleTimeoutMs / 2, 30_000));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  closeAll(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const entry of [...this.entries.values()]) this.remove(entry);
  }

  private remove(entry: Entry): void {
    if (!this.entries.delete(entry.tableKey)) return;
    const { session } = entry;
    const count = (this.perContainer.get(session.ctid) ?? 1) - 1;
    if (count > 0) this.perContainer.set(session.ctid, count);
    else this.perContainer.delete(session.ctid);
    // KeyObjects cannot be zeroed from JS; dropping them lets OpenSSL free (and clear) them.
    session.keys.clear();
    session.streams.clear();
    session.authKey.fill(0);
  }
}
