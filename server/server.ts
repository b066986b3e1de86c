/**
 * The VHSM server: receives stamped requests from a ServerTransport,
 * schedules them fairly per container, validates, dispatches to handlers,
 * audits, and answers every request exactly once.
 *
 *   const server = await VhsmServer.open({ storagePath: '/var/lib/vhsm/vhsm.db' });
 *   server.serve(transport);
 *   ...
 *   await server.stop(); // stop accepting, answer in-flight, close DB
 */
import { availableParallelism, hostname } from 'node:os';
import {
  ERROR_CODES,
  PROTOCOL_VERSION,
  ProtocolDecodeError,
  decodeRequest,
  encodeResponse,
  v1,
  type ErrorCodeName,
  type pb,
} from '../proto/index.js';
import type { SenderIdentity, ServerTransport, StampedRequest } from '../transport/types.js';
import type { AuditRecord } from './audit.js';
import { Authenticator } from './auth.js';
import { CommitCheckFailed, StorageUnavailable, type CommitCheck, type Durability } from './backend.js';
import { DEFAULT_SERVER_LIMITS, type OpContext, type OpResult, type ServerLimits, type ServerServices } from './context.js';
import { VhsmFailure } from './errors.js';
import { DEFAULT_FAIRNESS, FairScheduler, type FairnessOptions } from './fairness.js';
import { CertificateStore } from './certstore.js';
import { HANDLERS } from './handlers/index.js';
import { DEFAULT_PBKDF2_ITERATIONS, MAX_PBKDF2_ITERATIONS, MIN_PBKDF2_ITERATIONS } from './kdf.js';
import { KeyUses } from './key-uses.js';
import { KeyStore } from './keystore.js';
import { DEFAULT_LOCKOUT_POLICY, FailureLedger, type LockoutPolicy } from './lockout.js';
import { silentLogger, type Logger } from './log.js';
import { DEFAULT_SESSION_LIMITS, SessionTable, type Session, type SessionLimits } from './sessions.js';
import { openStorage } from './open-storage.js';
import { requestIdOf, validateRequest, type ValidRequest } from './validate.js';

/**
 * Read-only operations on one named key: with a backend that `checksAtCommit`
 * and the key already in the session, their session check is made when
 * their audit row is committed (backend.ts CommitCheck) instead of before.
 */
const CHECKED_AT_COMMIT: ReadonlySet<string> = new Set(['sign', 'verify', 'mac', 'verifyMac', 'encrypt', 'decrypt']);

/** Filled in by dispatch when the session check is left to the commit. */
interface DeferredCheck {
  check?: CommitCheck;
  session?: Session;
}

export interface VhsmServerOptions {
  /**
   * Where the store is, created by `vhsm-admin init`: a SQLite file (must
   * exist, mode 0600), or a postgres:// URL without a password (several
   * servers on one database; docs/install.md "Many hosts").
   */
  readonly storagePath: string;
  /** PostgreSQL: a file holding the password (else PGPASSWORD or ~/.pgpass). */
  readonly storagePasswordFile?: string;
  /** PostgreSQL: connections in the pool. Default 10. */
  readonly storagePoolSize?: number;
  /** PostgreSQL: this server's audit chain, unique per server on the database. Default: the host name. */
  readonly serverId?: string;
  /** Sessions end after this long without a request. Default 15 minutes. */
  readonly sessionIdleTimeoutMs?: number;
  /**
   * The PBKDF2 cost of rejecting an unknown user: keep it equal to what users are created with.
   * Also the least a password changed from a session is derived with. Default 600,000.
   */
  readonly pbkdf2Iterations?: number;
  readonly lockout?: Partial<LockoutPolicy>;
  readonly fairness?: Partial<FairnessOptions>;
  readonly sessionLimits?: Partial<Omit<SessionLimits, 'idleTimeoutMs'>>;
  readonly limits?: Partial<ServerLimits>;
  /**
   * Concurrent key derivations (logins) overall; each container gets one at a
   * time. Default: one less than the CPU count (at least 1), so derivations
   * never take every core from the event loop.
   */
  readonly maxConcurrentKdf?: number;
  /**
   * Which replies wait for their audit row (and change) to be fsynced:
   * 'changes' (default) only state changes; read-only operations are answered
   * once their row is in the WAL. 'all': every reply. See group-commit.ts.
   */
  readonly durability?: Durability;
  readonly logger?: Logger;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly clock?: () => number;
}

export interface VhsmServerStats {
  readonly requests: number;
  readonly inFlight: number;
  readonly queued: number;
  readonly sessions: number;
  /** Open streaming digest/MAC contexts. */
  readonly streams: number;
}

type State = 'ready' | 'serving' | 'stopping' | 'stopped';

export class VhsmServer {
  private state: State = 'ready';
  private transport: ServerTransport | undefined;
  private readonly scheduler: FairScheduler;
  private readonly replies = new Set<Promise<void>>();
  /** Accepted requests not started yet, by request id: a CANCEL may still spare their work. */
  private readonly waiting = new Map<bigint, StampedRequest>();
  private requestCount = 0;

  private constructor(
    private readonly services: ServerServices,
    fairness: FairnessOptions,
    private readonly logger: Logger,
  ) {
    this.scheduler = new FairScheduler(fairness);
  }

  static async open(options: VhsmServerOptions): Promise<VhsmServer> {
    const iterations = options.pbkdf2Iterations ?? DEFAULT_PBKDF2_ITERATIONS;
    if (!Number.isInteger(iterations) || iterations < MIN_PBKDF2_ITERATIONS || iterations > MAX_PBKDF2_ITERATIONS) {
      throw new RangeError(`pbkdf2Iterations must be an integer in ${MIN_PBKDF2_ITERATIONS}..${MAX_PBKDF2_ITERATIONS}`);
    }
    const fairness: FairnessOptions = { ...DEFAULT_FAIRNESS, ...options.fairness };
    for (const [name, value] of Object.entries(fairness)) {
      const least = name === 'activeWindowMs' ? 0 : 1; // a cap of 0 would never start anything
      if (!Number.isSafeInteger(value) || value < least) throw new RangeError(`fairness.${name} must be an integer >= ${least}`);
    }
    if (options.maxConcurrentKdf !== undefined && (!Number.isSafeInteger(options.maxConcurrentKdf) || options.maxConcurrentKdf < 1)) {
      throw new RangeError('maxConcurrentKdf must be an integer >= 1');
    }
    const durability = options.durability ?? 'changes';
    if (durability !== 'changes' && durability !== 'all') throw new RangeError("durability must be 'changes' or 'all'");
    const clock = options.clock ?? Date.now;
    const logger = options.logger ?? silentLogger;
    const storage = await openStorage(options.storagePath, {
      ...(options.storagePasswordFile === undefined ? {} : { passwordFile: options.storagePasswordFile }),
      ...(options.storagePoolSize === undefined ? {} : { poolSize: options.storagePoolSize }),
    });
    const lockout: LockoutPolicy = { ...DEFAULT_LOCKOUT_POLICY, ...options.lockout };
    const sessionLimits: SessionLimits = {
      ...DEFAULT_SESSION_LIMITS,
      ...options.sessionLimits,
      idleTimeoutMs: options.sessionIdleTimeoutMs ?? DEFAULT_SESSION_LIMITS.idleTimeoutMs,
    };
    const maxKdf = options.maxConcurrentKdf ?? defaultKdfConcurrency();
    const kdfLane = new FairScheduler({ maxInFlight: maxKdf, maxInFlightPerContainer: 1, maxInFlightPerContainerShared: 1, activeWindowMs: 0, maxQueuedPerContainer: 64 });
    const sessions = new SessionTable(sessionLimits, clock);
    const keyUses = new KeyUses(KEY_USES_INTERVAL_MS);
    let commits;
    try {
      commits = storage.openCommits({ durability, uses: keyUses, serverId: options.serverId ?? hostname(), logger });
    } catch (error) {
      await storage.close();
      throw error;
    }
    const { reads } = storage;
    const services: ServerServices = {
      storage,
      sessions,
      keys: new KeyStore(reads, sessionLimits.maxCachedKeysPerSession, keyUses),
      certificates: new CertificateStore(reads),
      auth: new Authenticator(reads, new FailureLedger(reads, lockout), kdfLane, iterations, clock),
      commits,
      limits: { ...DEFAULT_SERVER_LIMITS, ...options.limits },
      clock,
    };
    logger.log('info', 'storage opened', { storage: storage.kind, at: storage.description, schema: storage.schemaVersion });
    return new VhsmServer(services, fairness, logger);
  }

  get stats(): VhsmServerStats {
    return {
      requests: this.requestCount,
      inFlight: this.scheduler.active,
      queued: this.scheduler.queued,
      sessions: this.services.sessions.size,
      streams: this.services.sessions.streamCount,
    };
  }

  /** Starts answering requests from `transport`. */
  serve(transport: ServerTransport): void {
    if (this.state !== 'ready') throw new Error(`cannot serve in state ${this.state}`);
    this.transport = transport;
    this.state = 'serving';
    this.services.sessions.startSweeping();
    transport.listen(
      (request) => this.accept(request),
      (requestId) => this.cancel(requestId),
    );
    this.logger.log('info', 'serving');
  }

  /**
   * Stops: new requests get SHUTTING_DOWN, accepted ones are answered, the
   * audit is flushed, sessions are wiped, the transport and the DB closed.
   */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    const wasServing = this.state === 'serving';
    this.state = 'stopping';
    this.logger.log('info', 'stopping', { inFlight: this.scheduler.active, queued: this.scheduler.queued });
    await this.scheduler.idle();
    this.services.commits.flush();
    while (this.replies.size > 0) await Promise.allSettled([...this.replies]);
    this.services.sessions.closeAll();
    if (wasServing) await this.transport?.close();
    await this.services.commits.close();
    await this.services.storage.close();
    this.state = 'stopped';
    this.logger.log('info', 'stopped', { requests: this.requestCount });
  }

  private accept(request: StampedRequest): void {
    this.requestCount += 1;
    if (this.state !== 'serving') {
      this.refuse(request, 'SHUTTING_DOWN', 'the server is shutting down');
      return;
    }
    this.waiting.set(request.requestId, request);
    const accepted = this.scheduler.submit(request.sender.ctid, () =>
      // Not waiting any more: cancelled, and already answered.
      this.waiting.delete(request.requestId) ? this.process(request) : Promise.resolve(),
    );
    if (!accepted) {
      this.waiting.delete(request.requestId);
      this.refuse(request, 'BUSY', 'too many requests queued from this container');
    }
  }

  /**
   * The client of a request went away (its socket closed). Not started yet:
   * its work is skipped, and an empty reply releases its share of the
   * kernel's queue at once. Started: it finishes, and the module drops its
   * reply. Audited either way.
   */
  private cancel(requestId: bigint): void {
    const request = this.waiting.get(requestId);
    if (!request) return;
    this.waiting.delete(requestId);
    request.payload.fill(0);
    const record = auditRecord(request.sender, this.services.clock(), { user: '', keyId: '' }, 'cancelled', 'CANCELLED');
    this.track(this.services.commits.enqueue(record).catch(() => undefined));
    this.track(this.sendRaw(request, new Uint8Array(0)));
  }

  /** Answers without running the request (still audited). */
  private refuse(request: StampedRequest, code: 'BUSY' | 'SHUTTING_DOWN', message: string): void {
    const id = bestEffortId(request.payload);
    request.payload.fill(0);
    const record = auditRecord(request.sender, this.services.clock(), { user: '', keyId: '' }, 'refused', code);
    const done = this.state === 'stopped' ? Promise.resolve() : this.services.commits.enqueue(record).catch(() => undefined);
    this.track(done.then(() => this.send(request, errorResponse(id, code, message))));
  }

  private async process(request: StampedRequest): Promise<void> {
    const { services } = this;
    const audit = { user: '', keyId: '' };
    let audited = false;
    let op = 'invalid';
    let id = 0;
    let response: pb.Response.$Properties;
    let resultCode: 'OK' | ErrorCodeName;
    const deferred: DeferredCheck = {};
    try {
      const decoded = decodeRequest(request.payload);
      id = requestIdOf(decoded);
      const validated = validateRequest(decoded);
      op = validated.op;
      const ctx: OpContext = {
        services,
        sender: request.sender,
        audit,
        commit: async (change, result = 'OK') => {
          await services.commits.commit(change, auditRecord(request.sender, services.clock(), audit, op, result));
          audited = true;
        },
      };
      const result = await this.dispatch(ctx, validated, deferred);
      response = { version: PROTOCOL_VERSION, id, ...result };
      resultCode = 'OK';
    } catch (error) {
      const failure = this.toFailure(error, op);
      if (failure.code === 'BAD_REQUEST' && id === 0) id = bestEffortId(request.payload);
      response = errorResponse(id, failure.code, failure.message, failure.retryAfterMs);
      resultCode = failure.code;
    } finally {
      // Our copy of the request; it may hold a password. Handlers keep no views into it.
      request.payload.fill(0);
    }

    if (!audited) {
      try {
        const check = resultCode === 'OK' ? deferred.check : undefined;
        try {
          await services.commits.enqueue(auditRecord(request.sender, services.clock(), audit, op, resultCode), check);
        } catch (error) {
          if (!(error instanceof CommitCheckFailed)) throw error;
          // Refused at commit, as the up-front check would have refused it: nothing of it was written.
          wipeSecrets(response);
          const failure = this.checkFailure(error, deferred);
          if (failure.code === 'SESSION_INVALID') audit.user = audit.keyId = ''; // as when refused up front: no session, so no user
          response = errorResponse(id, failure.code, failure.message);
          await services.commits.enqueue(auditRecord(request.sender, services.clock(), audit, op, failure.code));
        }
      } catch (error) {
        this.logger.log('error', 'audit write failed', { op, error: (error as Error).message });
        wipeSecrets(response); // never sent: nothing is answered without its audit row
        response =
          error instanceof StorageUnavailable
            ? errorResponse(id, 'UNAVAILABLE', 'the database is unavailable; retry later')
            : errorResponse(id, 'INTERNAL', 'audit log unavailable');
      }
    }
    await this.send(request, response);
  }

  /** The error a request refused by its CommitCheck gets (the same as the up-front check's), and its session or key dropped. */
  private checkFailure(error: CommitCheckFailed, deferred: DeferredCheck): VhsmFailure {
    const { session, check } = deferred;
    if (error.reason === 'container') {
      if (session) this.services.sessions.closeSession(session);
      return new VhsmFailure('SESSION_INVALID', 'no such session here');
    }
    session?.keys.delete(check!.keyId);
    return new VhsmFailure('KEY_NOT_FOUND', `key ${check!.keyId} was deleted or replaced; retry`);
  }

  private async dispatch(ctx: OpContext, request: ValidRequest, deferred: DeferredCheck): Promise<OpResult> {
    // HANDLERS[op] takes OpRequest<op>; TypeScript cannot correlate the two through the union, hence the casts.
    const handler = HANDLERS[request.op];
    if (!handler.needsSession) return (handler.run as (c: OpContext, r: ValidRequest) => Promise<OpResult>)(ctx, request);
    if (!request.session) throw new VhsmFailure('NOT_AUTHENTICATED', 'this operation needs a session (log in first)');
    const { sessions, storage } = this.services;
    const session = sessions.lookup(request.session, ctx.sender);
    if (!session) throw new VhsmFailure('SESSION_INVALID', 'no such session here');
    // The admin may have deleted the user or removed this container meanwhile.
    const namedKeyId = 'keyId' in request && typeof request.keyId === 'string' ? request.keyId : undefined;
    const held = namedKeyId === undefined ? undefined : session.keys.get(namedKeyId);
    let namedKey: { keyId: string; rowId: number | undefined } | undefined;
    if (held && storage.checksAtCommit && CHECKED_AT_COMMIT.has(request.op)) {
      // The same check, made by the statement that writes the audit row: the reply is released only if it holds then.
      deferred.check = { userId: session.userId, ctid: ctx.sender.ctid, keyId: held.keyId, keyRowId: held.rowId };
      deferred.session = session;
      namedKey = { keyId: held.keyId, rowId: held.rowId };
    } else {
      const check = await storage.reads.sessionCheck(session.userId, ctx.sender.ctid, namedKeyId);
      if (!check.allowed) {
        sessions.closeSession(session);
        throw new VhsmFailure('SESSION_INVALID', 'no such session here');
      }
      namedKey = namedKeyId === undefined ? undefined : { keyId: namedKeyId, rowId: check.keyRowId };
    }
    ctx.audit.user = session.username;
    type Ctx = OpContext & { session: typeof session; namedKey: typeof namedKey };
    return (handler.run as (c: Ctx, r: ValidRequest) => Promise<OpResult>)({ ...ctx, session, namedKey }, request);
  }

  private toFailure(error: unknown, op: string): VhsmFailure {
    if (error instanceof VhsmFailure) return error;
    if (error instanceof ProtocolDecodeError) return new VhsmFailure('BAD_REQUEST', error.message);
    if (error instanceof StorageUnavailable) {
      this.logger.log('warn', 'storage unavailable', { op, error: error.message });
      return new VhsmFailure('UNAVAILABLE', 'the database is unavailable; retry later');
    }
    this.logger.log('error', 'request failed', { op, error: error instanceof Error ? error.message : String(error) });
    return new VhsmFailure('INTERNAL', 'internal error');
  }

  private send(request: StampedRequest, response: pb.Response.$Properties): Promise<void> {
    const transport = this.transport;
    if (!transport) {
      wipeSecrets(response);
      return Promise.resolve();
    }
    const encoded = encodeResponse(response);
    const sent = this.sendRaw(request, encoded).finally(() => {
      // The transport has its own copy now (sendmsg, or the memory hub's).
      encoded.fill(0);
      wipeSecrets(response);
    });
    this.track(sent);
    return sent;
  }

  private sendRaw(request: StampedRequest, payload: Uint8Array): Promise<void> {
    return (this.transport?.reply(request.requestId, payload) ?? Promise.resolve()).catch((error: unknown) => {
      // The client may have timed out or gone away; nothing else to do.
      this.logger.log('debug', 'reply not delivered', { ctid: request.sender.ctid, error: (error as Error).message });
    });
  }

  private track(promise: Promise<void>): void {
    this.replies.add(promise);
    void promise.finally(() => this.replies.delete(promise));
  }
}

/** Key use counters are written at most this often (key-uses.ts). */
const KEY_USES_INTERVAL_MS = 1000;

function defaultKdfConcurrency(): number {
  return Math.max(1, availableParallelism() - 1);
}

/**
 * Zeroes the response fields that carry secrets once they are sent: every
 * one of them is a buffer made for this response (never a view of a cached
 * key or the session table, which is keyed by a hash of the session id).
 */
function wipeSecrets(response: pb.Response.$Properties): void {
  const secrets = [
    response.login?.session,
    response.decrypt?.plaintext,
    response.random?.data,
    response.exportKey?.keyData,
    response.agreeKey?.keyMaterial,
    response.deriveKey?.keyMaterial,
  ];
  for (const secret of secrets) secret?.fill(0);
}

function errorResponse(id: number, code: ErrorCodeName, message: string, retryAfterMs?: number): pb.Response.$Properties {
  return { version: PROTOCOL_VERSION, id, error: { code: ERROR_CODES[code], message, retryAfterMs: retryAfterMs ?? 0 } };
}

/** The id of a request that failed strict decoding, if a lenient decode can still read it. */
function bestEffortId(payload: Uint8Array): number {
  try {
    return requestIdOf(v1.Request.decode(payload));
  } catch {
    return 0;
  }
}

function auditRecord(
  sender: SenderIdentity,
  timeMs: number,
  audit: { user: string; keyId: string },
  op: string,
  result: 'OK' | ErrorCodeName | 'CANCELLED',
): AuditRecord {
  return {
    timeMs,
    ctid: sender.ctid,
    netnsCookie: sender.netnsCookie,
    pid: sender.pid,
    procStart: sender.procStart,
    uid: sender.uid,
    gid: sender.gid,
    user: audit.user,
    op,
    keyId: audit.keyId,
    result,
  };
}
