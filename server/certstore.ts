/**
 * Users' X.509 certificates (PKCS#11 CKO_CERTIFICATE): public data, stored
 * as given next to the user's keys and listed before login with the public
 * keys (list_public_objects).
 *
 * The listing sends every certificate of a user on its first page, and a
 * reply is at most 32 KiB (the kernel's payload limit). So a user's
 * certificates are bounded by what they take in that reply, not only by
 * count: MAX_CERTIFICATE_LIST_BYTES leaves room on the first page for the
 * cursor and at least one public key, whatever the certificates are.
 */
import type Database from 'better-sqlite3';
import { VhsmFailure } from './errors.js';
import { prepared } from './sql.js';

/** What a user's certificates may take in the first page of the listing. */
export const MAX_CERTIFICATE_LIST_BYTES = 28 * 1024;
/**
 * Upper bound of one certificate's bytes in that page beyond its DER, CKA_ID
 * and label: field tags and lengths, the 32-character cert_id, created_ms and
 * the repeated-field framing (54 at most; the test checks it with the encoder).
 */
export const CERTIFICATE_FRAMING_BYTES = 64;

export interface CertificateRow {
  /** Server-chosen, 32 hex characters, unique per user. */
  readonly certId: string;
  /** PKCS#11 CKA_ID: pairs the certificate with the key of the same id. */
  readonly objectId: Buffer;
  readonly label: string;
  readonly der: Buffer;
  readonly createdMs: number;
}

interface RawCertificateRow {
  cert_id: string;
  object_id: Buffer;
  label: string;
  der: Buffer;
  created_ms: number;
}

/** Bytes a certificate takes in the listing's first page (an upper bound). */
export function listedBytes(objectIdBytes: number, labelBytes: number, derBytes: number): number {
  return objectIdBytes + labelBytes + derBytes + CERTIFICATE_FRAMING_BYTES;
}

export class CertificateStore {
  constructor(private readonly db: Database.Database) {}

  /** All of the user's certificates, in cert_id order. */
  list(userId: number): CertificateRow[] {
    const rows = prepared(this.db, 'SELECT cert_id, object_id, label, der, created_ms FROM certificates WHERE user_id = ? ORDER BY cert_id').all(
      userId,
    ) as RawCertificateRow[];
    return rows.map((row) => ({ certId: row.cert_id, objectId: row.object_id, label: row.label, der: row.der, createdMs: row.created_ms }));
  }

  /** Stores a certificate; call inside a write transaction. RESOURCE_EXHAUSTED beyond `maxCount` or the listing budget. */
  insert(userId: number, cert: CertificateRow, maxCount: number): void {
    const used = prepared(
      this.db,
      `SELECT count(*) AS n, coalesce(sum(length(object_id) + length(CAST(label AS BLOB)) + length(der)), 0) AS bytes
       FROM certificates WHERE user_id = ?`,
    ).get(userId) as { n: number; bytes: number };
    if (used.n >= maxCount) throw new VhsmFailure('RESOURCE_EXHAUSTED', `certificate limit reached for this user (${maxCount})`);
    const listed = used.bytes + used.n * CERTIFICATE_FRAMING_BYTES + listedBytes(cert.objectId.length, Buffer.byteLength(cert.label), cert.der.length);
    if (listed > MAX_CERTIFICATE_LIST_BYTES) {
      throw new VhsmFailure('RESOURCE_EXHAUSTED', `this user's certificates would exceed ${MAX_CERTIFICATE_LIST_BYTES} bytes (they are all listed in one reply)`);
    }
    prepared(this.db, 'INSERT INTO certificates (user_id, cert_id, object_id, label, der, created_ms) VALUES (?, ?, ?, ?, ?, ?)').run(
      userId,
      cert.certId,
      cert.objectId,
      cert.label,
      cert.der,
      cert.createdMs,
    );
  }

  /** Deletes; call inside a write transaction. False when the user has no such certificate. */
  delete(userId: number, certId: string): boolean {
    return prepared(this.db, 'DELETE FROM certificates WHERE user_id = ? AND cert_id = ?').run(userId, certId).changes === 1;
  }
}
