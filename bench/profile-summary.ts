/**
 * Summarises a V8 .cpuprofile: self time per function and per source file
 * (project files by path, dependencies by package, V8/native buckets by
 * name), as shares of the sampled time.
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [TOP]
 * prints one JSON line: { totalMs, functions: [...], files: [...] }
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: number[];
}

interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly samples: number[];
  readonly timeDeltas: number[];
}

export interface ProfileShare {
  readonly name: string;
  readonly ms: number;
  readonly share: number;
}

function fileOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : `(native) ${functionName}`;
  const nodeModules = url.lastIndexOf('/node_modules/');
  if (nodeModules >= 0) {
    const rest = url.slice(nodeModules + '/node_modules/'.length).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length);
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '');
}

export function summarise(profile: CpuProfile, top = 15): { totalMs: number; functions: ProfileShare[]; files: ProfileShare[] } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, ProfileNode>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  let total = 0;
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    total += us;
    let file = fileOf(frame.url, frame.functionName);
    let fn = `${frame.functionName || '(anonymous)'} ${file}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    // Native functions share names (better-sqlite3's Statement.run and node:crypto's SignJob.run):
    // name them after their JS caller, and count them in the caller's file.
    const parent = parentOf.get(id)?.callFrame;
    if (!frame.url && !frame.functionName.startsWith('(') && parent?.url) {
      file = fileOf(parent.url, parent.functionName);
      fn = `${frame.functionName} (native) ← ${parent.functionName || '(anonymous)'} ${file}:${parent.lineNumber + 1}`;
    }
    functions.set(fn, (functions.get(fn) ?? 0) + us);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const rank = (map: Map<string, number>): ProfileShare[] =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, share: Math.round((us / total) * 1000) / 1000 }));
  return { totalMs: Math.round(total / 1000), functions: rank(functions), files: rank(files) };
}

if (process.argv[1]?.endsWith('profile-summary.js')) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node dist/bench/profile-summary.js FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  console.log(JSON.stringify(summarise(profile, Number(process.argv[3] ?? 15))));
}
