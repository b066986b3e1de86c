/**
 * Failed-login bookkeeping per (user, container): exponential backoff, then
 * a lock that only an admin clears (`vhsm-admin user unlock`).
 *
 * Known users' counters live in the DB (they survive restarts, the admin
 * sees them, and with several servers on one database every server counts
 * into the same row: one increment statement, so none is lost). Unknown usernames get the same treatment from a bounded
 * in-memory table, so the replies do not reveal which names exist.
 */
import type { StorageReads, StorageTx } from './backend.js';

export interface LockoutPolicy {
  /** Failures allowed without any delay. */
  readonly freeAttempts: number;
  /** Delay after the first failure beyond the free ones; doubles with each further failure. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Failures after which the (user, container) pair is locked until an admin unlocks it. */
  readonly lockAfter: number;
}

export const DEFAULT_LOCKOUT_POLICY: LockoutPolicy = {
  freeAttempts: 3,
  backoffBaseMs: 1_000,
  backoffMaxMs: 5 * 60_000,
  lockAfter: 10,
};

export interface FailureState {
  readonly failures: number;
  readonly lastFailureMs: number;
  readonly locked: boolean;
}

export type LoginGate =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly code: 'LOCKED_OUT' }
  | { readonly allowed: false; readonly code: 'LOGIN_THROTTLED'; readonly retryAfterMs: number };

export function backoffDelayMs(policy: LockoutPolicy, failures: number): number {
  if (failures < policy.freeAttempts) return 0;
  const exponent = Math.min(failures - policy.freeAttempts, 30);
  return Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** exponent);
}

export function evaluateGate(policy: LockoutPolicy, state: FailureState | undefined, nowMs: number): LoginGate {
  if (!state) return { allowed: true };
  if (state.locked) return { allowed: false, code: 'LOCKED_OUT' };
  const readyAt = state.lastFailureMs + backoffDelayMs(policy, state.failures);
  if (nowMs < readyAt) return { allowed: false, code: 'LOGIN_THROTTLED', retryAfterMs: readyAt - nowMs };
  return { allowed: true };
}

export function nextFailureState(policy: LockoutPolicy, state: FailureState | undefined, nowMs: number): FailureState {
  const failures = (state?.failures ?? 0) + 1;
  return { failures, lastFailureMs: nowMs, locked: failures >= policy.lockAfter };
}

/** Who is logging in: a known user (by id) or just a name that does not exist. */
export type LoginSubject = { readonly userId: number; readonly name: string } | { readonly userId: undefined; readonly name: string };

const UNKNOWN_TABLE_CAPACITY = 10_000;

export class FailureLedger {
  private readonly unknown = new Map<string, FailureState>();

  constructor(
    private readonly reads: StorageReads,
    private readonly policy: LockoutPolicy,
  ) {}

  async gate(subject: LoginSubject, ctid: number, nowMs: number): Promise<LoginGate> {
    const state = subject.userId === undefined ? this.unknown.get(`${subject.name}\u0000${ctid}`) : await this.reads.failureState(subject.userId, ctid);
    return evaluateGate(this.policy, state, nowMs);
  }

  /** Records one failure. For known users this writes the DB: run it inside a commit. */
  async recordFailure(tx: StorageTx, subject: LoginSubject, ctid: number, nowMs: number): Promise<FailureState> {
    if (subject.userId !== undefined) return tx.recordFailure(subject.userId, ctid, nowMs, this.policy.lockAfter);
    const key = `${subject.name}\u0000${ctid}`;
    const next = nextFailureState(this.policy, this.unknown.get(key), nowMs);
    this.unknown.delete(key); // re-insert at the end: the Map keeps insertion order for eviction
    this.unknown.set(key, next);
    if (this.unknown.size > UNKNOWN_TABLE_CAPACITY) {
      const oldest = this.unknown.keys().next().value;
      if (oldest !== undefined) this.unknown.delete(oldest);
    }
    return next;
  }

  /** Forgets failures after a successful login. DB write for known users: run it inside a commit. */
  async reset(tx: StorageTx, subject: LoginSubject, ctid: number): Promise<void> {
    if (subject.userId === undefined) this.unknown.delete(`${subject.name}\u0000${ctid}`);
    else await tx.resetFailures(subject.userId, ctid);
  }
}
