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
import type { StorageReads, StorageTx } from './backend.js';
import { VhsmFailure } from './errors.js';

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

/** Bytes a certificate takes in the listing's first page (an upper bound). */
export function listedBytes(objectIdBytes: number, labelBytes: number, derBytes: number): number {
  return objectIdBytes + labelBytes + derBytes + CERTIFICATE_FRAMING_BYTES;
}

export class CertificateStore {
  constructor(private readonly reads: StorageReads) {}

  /** All of the user's certificates, in cert_id order. */
  async list(userId: number): Promise<CertificateRow[]> {
    return this.reads.listCertificates(userId);
  }

  /** Stores a certificate inside a commit. RESOURCE_EXHAUSTED beyond `maxCount` or the listing budget. */
  async insert(tx: StorageTx, userId: number, cert: CertificateRow, maxCount: number): Promise<void> {
    const used = await tx.certificateUsage(userId);
    if (used.count >= maxCount) throw new VhsmFailure('RESOURCE_EXHAUSTED', `certificate limit reached for this user (${maxCount})`);
    const listed = used.bytes + used.count * CERTIFICATE_FRAMING_BYTES + listedBytes(cert.objectId.length, Buffer.byteLength(cert.label), cert.der.length);
    if (listed > MAX_CERTIFICATE_LIST_BYTES) {
      throw new VhsmFailure('RESOURCE_EXHAUSTED', `this user's certificates would exceed ${MAX_CERTIFICATE_LIST_BYTES} bytes (they are all listed in one reply)`);
    }
    await tx.insertCertificate(userId, cert);
  }
}
