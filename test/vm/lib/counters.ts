/**
 * The module's counter invariants (kernel/README.md), checked in tests after
 * every scenario.
 */
import type { Test } from 'tap';
import type { Stats } from '../../../transport/netlink-admin.js';

export function checkInvariants(t: Test, s: Stats): void {
  const n = (k: string): bigint => s.counters[k] ?? 0n;
  t.equal(
    n('requests'),
    n('unbound') + n('foreign_pid') + n('too_big') + n('no_server') + n('quota') + n('server_busy') + n('forwarded'),
    'every request accounted for',
  );
  t.equal(n('forwarded'), n('replies') + n('timeouts') + n('server_gone') + BigInt(s.pending), 'every forwarded request left the table once, or is pending');
  if (s.pending !== 0) return; // the rest hold once what left has been sent
  t.equal(n('replies') + n('timeouts') + n('server_gone'), n('responses') + n('undelivered') + n('client_gone'), 'every finished request answered its client, or had none');
  t.equal(n('orphaned'), n('client_gone'), 'every orphaned request finished without an answer');
}
