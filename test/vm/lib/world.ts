/**
 * A small world of containers for transport tests: the module loaded with
 * vhsm_veid = 412, a "vhsm" netns bound to it, and client netns bound to
 * their CTIDs, all from the host (initial netns) through VhsmAdmin.
 */
import { VhsmAdmin } from '../../../transport/netlink-admin.js';
import { loadModule, unloadModule, type ModuleParams } from './module.js';
import { Agent, createNetns, deleteNetns, type AgentOptions } from './netns.js';

export const VHSM_CTID = 412;

export class World {
  readonly agents: Agent[] = [];
  private readonly namespaces: string[] = [];
  private constructor(readonly admin: VhsmAdmin) {}

  /** A netns owned by this world (deleted by destroy()). */
  netns(name: string): string {
    this.namespaces.push(name);
    return createNetns(name);
  }

  static async create(clients: Record<string, number>, params: ModuleParams = {}): Promise<World> {
    loadModule({ vhsm_veid: VHSM_CTID, ...params });
    const admin = await VhsmAdmin.open();
    const world = new World(admin);
    await admin.bind(VHSM_CTID, { netnsPath: world.netns('vhsm') });
    for (const [name, ctid] of Object.entries(clients)) await admin.bind(ctid, { netnsPath: world.netns(name) });
    return world;
  }

  agent(ns: string | null, script: string, args: string[] = [], options: AgentOptions = {}): Agent {
    const agent = new Agent(ns, script, args, options);
    this.agents.push(agent);
    return agent;
  }

  /** An echo server in the vhsm netns, registered and ready; `recvBufferBytes`: its socket's receive buffer request. */
  async echoServer(mode: 'echo' | 'silent' = 'echo', recvBufferBytes?: number): Promise<Agent> {
    const server = this.agent('vhsm', 'echo-server', recvBufferBytes === undefined ? [mode] : [mode, String(recvBufferBytes)]);
    const ready = await server.next<{ type: string; code?: string }>();
    if (ready.type !== 'ready') throw new Error(`echo server did not register: ${JSON.stringify(ready)} ${server.stderr}`);
    return server;
  }

  async client(ns: string, ctid: number, options: AgentOptions = {}): Promise<Agent> {
    const client = this.agent(ns, 'client', [String(ctid)], options);
    await client.expect('ready');
    return client;
  }

  async destroy(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.kill()));
    await this.admin.close();
    for (const name of this.namespaces) {
      try {
        deleteNetns(name);
      } catch {
        // already deleted by the test itself
      }
    }
    unloadModule();
  }
}
