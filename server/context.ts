/**
 * What a handler gets: the server's services, who sent the request, the
 * session (for session ops), and a way to commit a state change atomically
 * with the request's audit row.
 */
import type { ErrorCodeName, OperationName, pb } from '../proto/index.js';
import type { SenderIdentity } from '../transport/types.js';
import type { Authenticator } from './auth.js';
import type { Change, CommitQueue, StorageBackend } from './backend.js';
import type { CertificateStore } from './certstore.js';
import type { KeyStore } from './keystore.js';
import type { Session, SessionTable } from './sessions.js';
import type { OpRequest } from './validate.js';

export interface ServerLimits {
  readonly maxKeysPerUser: number;
  /** Also bounded by size: all of them go into one reply (certstore.ts). */
  readonly maxCertificatesPerUser: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxKeysPerUser: 10_000,
  maxCertificatesPerUser: 100,
};

export interface ServerServices {
  readonly storage: StorageBackend;
  readonly sessions: SessionTable;
  readonly keys: KeyStore;
  readonly certificates: CertificateStore;
  readonly auth: Authenticator;
  readonly commits: CommitQueue;
  readonly limits: ServerLimits;
  readonly clock: () => number;
}

export interface OpContext {
  readonly services: ServerServices;
  readonly sender: SenderIdentity;
  /** Filled in by handlers as they learn them; written to the audit row. */
  readonly audit: { user: string; keyId: string };
  /**
   * Commits `change` together with this request's audit row (result
   * `result`, default OK), with the next group commit. Resolves when both are
   * durable; rejects with the change's own error, which is then audited as
   * the request's result instead.
   */
  commit(change: Change, result?: 'OK' | ErrorCodeName): Promise<void>;
}

export interface SessionOpContext extends OpContext {
  readonly session: Session;
  /** The row of the key named by the request's keyId, looked up with the session check (undefined: no such key). */
  readonly namedKey?: { readonly keyId: string; readonly rowId: number | undefined };
}

/** The success part of a Response: exactly one result member. */
export type OpResult = Omit<pb.Response.$Properties, 'version' | 'id' | 'error' | '$unknowns' | 'result'>;

export type Handler<K extends OperationName> =
  | { readonly needsSession: false; run(ctx: OpContext, request: OpRequest<K>): Promise<OpResult> }
  | { readonly needsSession: true; run(ctx: SessionOpContext, request: OpRequest<K>): Promise<OpResult> };

export type HandlerTable = { readonly [K in OperationName]: Handler<K> };
