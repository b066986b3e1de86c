/**
 * Runs a host test suite over the real module: the fixture's server socket
 * lives in the VHSM netns (bound to vhsm_veid), and each client identity's
 * CTID gets a netns of its own, bound on first use. One process plays every
 * container by opening each socket inside the right netns (setns), so the
 * same test code that runs over the in-memory transport runs here unchanged,
 * with stamps that come from the kernel.
 */
import t from 'tap';
import { socketFactoryInNetns } from '../../../netlink/addon.js';
import { VhsmAdmin } from '../../../transport/netlink-admin.js';
import { openNetlinkClient } from '../../../transport/netlink-client.js';
import { registerNetlinkServer } from '../../../transport/netlink-server.js';
import { useTransports } from '../../host/helpers/fixture.js';
import { loadModule, setParam, unloadModule } from './module.js';
import { createNetns, deleteNetns } from './netns.js';
import { VHSM_CTID } from './world.js';

/** The module's per-request deadline in these tests, and the fixture clients' own (RSA keygen under TCG can pass 10 s). */
const MODULE_TIMEOUT_MS = 30_000;

export interface KernelTransports {
  /** The module's admin channel (open until teardown). */
  readonly admin: VhsmAdmin;
  /** Closes the admin channel, deletes the namespaces, unloads the module. */
  teardown(): Promise<void>;
}

/**
 * Loads the module, binds the VHSM netns, and makes every fixture of this
 * process (startFixture) serve and connect through the module.
 */
export async function setupKernelTransports(): Promise<KernelTransports> {
  // Emulation makes the slowest operations (RSA key generation's prime
  // search has a long tail) take tens of seconds: the kernel's deadline
  // matches the client's own 30 s, not the 10 s default meant for real hardware.
  loadModule({ vhsm_veid: VHSM_CTID, timeout_ms: MODULE_TIMEOUT_MS });
  const admin = await VhsmAdmin.open();
  const namespaces = new Map<number, string>();
  async function netnsFor(ctid: number): Promise<string> {
    let path = namespaces.get(ctid);
    if (!path) {
      path = createNetns(ctid === VHSM_CTID ? 'vhsm' : `ct${ctid}`);
      // CTID 0 is what the module stamps on an unbound netns when allowed to.
      if (ctid === 0) setParam('allow_unbound', true);
      else await admin.bind(ctid, { netnsPath: path });
      namespaces.set(ctid, path);
    }
    return path;
  }
  const vhsmNetns = await netnsFor(VHSM_CTID);
  useTransports({
    kind: 'netlink',
    server: () => registerNetlinkServer({ factory: socketFactoryInNetns(vhsmNetns) }),
    client: async (who) => openNetlinkClient({ factory: socketFactoryInNetns(await netnsFor(who.ctid)), timeoutMs: MODULE_TIMEOUT_MS }),
    clientTimeoutMs: MODULE_TIMEOUT_MS,
  });
  return {
    admin,
    async teardown() {
      await admin.close();
      for (const path of namespaces.values()) deleteNetns(path.slice('/run/netns/'.length));
      unloadModule();
    },
  };
}

/** Module counters, for a t.comment. */
export async function countersText(admin: VhsmAdmin): Promise<string> {
  const stats = await admin.stats();
  return JSON.stringify(stats.counters, (_k, v) => (typeof v === 'bigint' ? Number(v) : v));
}

export async function runHostSuiteOverKernel(suite: string): Promise<void> {
  const kernel = await setupKernelTransports();
  t.teardown(async () => {
    t.comment(`module counters after ${suite}: ${await countersText(kernel.admin)}`);
    await kernel.teardown();
  });
  await import(`../../host/${suite}.test.js`);
}
