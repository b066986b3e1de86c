/**
 * Worker thread behind checkpointer.ts: its own connection to the DB, used
 * only to copy the WAL back into the database file. A checkpoint reads and
 * writes up to a thousand pages and fsyncs twice; here that happens beside
 * the server's event loop instead of inside one of its commits.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export type CheckpointRequest = 'checkpoint' | 'close';
export type CheckpointReply = { readonly ok: true; readonly busy: number; readonly walFrames: number; readonly copied: number } | { readonly ok: false; readonly error: string };

const port = parentPort;
if (!port) throw new Error('checkpoint-worker runs as a worker thread');

const db = new Database((workerData as { path: string }).path, { fileMustExist: true, timeout: 5000 });
// NORMAL: the checkpoint syncs the WAL before copying and the database after.
db.pragma('synchronous = NORMAL');

port.on('message', (message: CheckpointRequest) => {
  if (message === 'close') {
    db.close();
    port.close(); // nothing else keeps the thread alive: it exits
    return;
  }
  let reply: CheckpointReply;
  try {
    // PASSIVE never waits for the server's readers or writer; what it cannot copy now, the next one does.
    const [row] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    reply = { ok: true, busy: row?.busy ?? 0, walFrames: row?.log ?? 0, copied: row?.checkpointed ?? 0 };
  } catch (error) {
    reply = { ok: false, error: (error as Error).message };
  }
  port.postMessage(reply);
});
