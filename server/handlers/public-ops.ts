/**
 * list_public_objects: the public keys of a user's key pairs and the user's
 * certificates, WITHOUT a session — PKCS#11 consumers (ssh-keygen -D,
 * pam_p11) look for them before C_Login. Who may see them: processes in a
 * container of the user's allowed set, the same containers that may log in
 * as the user. Secret keys never appear.
 *
 * No user enumeration: an unknown user and a container outside the set get
 * the same NOT_ALLOWED after the same two indexed lookups, and no key
 * derivation runs either way. A request costs at most one page of rows
 * (limit ≤ 100, partial index) plus the user's certificates, which are
 * bounded in bytes (certstore.ts); it runs in the normal fairness lane.
 */
import { MAX_PAYLOAD_BYTES, v1, type pb } from '../../proto/index.js';
import { VhsmFailure } from '../errors.js';
import type { Handler } from '../context.js';
import type { StorageReads } from '../backend.js';
import type { UserRow } from '../users.js';
import { toCertificateInfo, toPublicKeyObject } from './convert.js';

/** What the Response takes around the list: version, an id below 2^53, the result's tag and length. */
const RESPONSE_FRAMING_BYTES = 32;
/** next_after_key_id: tag, length and a 64-character key id. */
const CURSOR_BYTES = 66;

/** Bytes of one element of a repeated message field: tag, length, body. */
function elementBytes(bodyBytes: number): number {
  let lengthBytes = 1;
  for (let rest = bodyBytes >>> 7; rest > 0; rest >>>= 7) lengthBytes += 1;
  return 1 + lengthBytes + bodyBytes;
}

/** The user, when it exists and the sender's container is in its allowed set; NOT_ALLOWED, the same either way, otherwise. */
async function visibleUser(reads: StorageReads, username: string, ctid: number): Promise<UserRow> {
  const user = await reads.findUser(username);
  // Row ids start at 1: for an unknown name this is the same lookup, finding nothing.
  const allowed = await reads.isContainerAllowed(user?.id ?? 0, ctid);
  if (!user || !allowed) throw new VhsmFailure('NOT_ALLOWED', 'no public objects for this user here: unknown user, or this container is not in its allowed set');
  return user;
}

export const listPublicObjects: Handler<'listPublicObjects'> = {
  needsSession: false,
  async run(ctx, request) {
    ctx.audit.user = request.username;
    const { storage, keys, certificates } = ctx.services;
    const user = await visibleUser(storage.reads, request.username, ctx.sender.ctid);
    const certs = request.afterKeyId === '' ? (await certificates.list(user.id)).map(toCertificateInfo) : [];

    // A reply is at most 32 KiB: keys fill what the certificates leave, so a
    // page may hold fewer than `limit`; the cursor says whether more follow.
    let room = MAX_PAYLOAD_BYTES - RESPONSE_FRAMING_BYTES - CURSOR_BYTES;
    for (const cert of certs) room -= elementBytes(v1.CertificateInfo.encode(cert).finish().length);
    const rows = await keys.listPublic(user.id, request.afterKeyId, request.limit + 1);
    const page: pb.PublicKeyObject.$Properties[] = [];
    for (const row of rows.slice(0, request.limit)) {
      const object = toPublicKeyObject(row);
      const bytes = elementBytes(v1.PublicKeyObject.encode(object).finish().length);
      if (bytes > room) break;
      page.push(object);
      room -= bytes;
    }
    // The certificate budget leaves room for the largest key object, so a page with keys left always has one.
    if (page.length === 0 && rows.length > 0) throw new Error('public object page holds no key');
    const more = page.length < rows.length;
    return { listPublicObjects: { keys: page, nextAfterKeyId: more ? page[page.length - 1]!.key!.keyId! : '', certificates: certs } };
  },
};
