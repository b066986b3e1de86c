/**
 * `vhsm certs add|list|delete` and `vhsm public-objects`: X.509 certificates
 * stored next to the keys, and what a PKCS#11 consumer sees before it logs
 * in. Rows of the same kind as operations.ts; the listings need no password
 * (only a container the user may log in from).
 */
import { X509Certificate } from 'node:crypto';
import type { CertificateInfo, PublicKeyObject } from '../../client/index.js';
import { isValidKeyId } from '../../server/rules.js';
import { inputError, usageError } from './errors.js';
import { jsonBytes, pemToDer, type Encoding } from './io.js';
import { table, text, type OperationSpec } from './operations.js';

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
/** PKCS#11 CKA_ID: at most 64 bytes (the server checks it too). */
const MAX_OBJECT_ID_BYTES = 64;

/** Subject and expiry for display; a certificate the server took always parses. */
function describeCertificate(der: Uint8Array): { subject: string; notAfter: string } {
  try {
    const parsed = new X509Certificate(der);
    return { subject: parsed.subject.replace(/\n/g, ', '), notAfter: new Date(parsed.validTo).toISOString() };
  } catch {
    return { subject: '?', notAfter: '?' };
  }
}

const idText = (id: Uint8Array): string => (id.length ? Buffer.from(id).toString('hex') : '-');

function certificateJson(cert: CertificateInfo, encoding: Encoding): Record<string, unknown> {
  return {
    certId: cert.certId,
    id: Buffer.from(cert.id).toString('hex'),
    label: cert.label,
    ...describeCertificate(cert.der),
    createdAt: cert.createdAt.toISOString(),
    der: jsonBytes(cert.der, encoding),
  };
}

function certificateTable(certs: readonly CertificateInfo[]): string {
  if (certs.length === 0) return 'no certificates';
  return table(
    ['CERT ID', 'CKA_ID', 'NOT AFTER', 'SUBJECT', 'LABEL'],
    certs.map((cert) => {
      const { subject, notAfter } = describeCertificate(cert.der);
      return [cert.certId, idText(cert.id), notAfter, subject, cert.label];
    }),
  );
}

function publicKeyJson(object: PublicKeyObject, encoding: Encoding): Record<string, unknown> {
  const { key } = object;
  return {
    keyId: key.keyId,
    type: key.type,
    label: key.label,
    usages: key.usages,
    extractable: key.extractable,
    createdAt: key.createdAt.toISOString(),
    spki: jsonBytes(object.spki, encoding),
  };
}

function publicKeyTable(keys: readonly PublicKeyObject[]): string {
  if (keys.length === 0) return 'no public keys';
  return table(
    ['KEY ID', 'TYPE', 'USAGES', 'LABEL'],
    keys.map(({ key }) => [key.keyId, key.type, key.usages.join(',') || '-', key.label]),
  );
}

/** JSON byte fields follow --encoding, as every binary result does. */
const encodingName = (encoding: Encoding): string => (encoding === 'base64' ? 'base64' : 'hex');

/** CKA_ID from --id HEX or --key KEY (the key id's bytes, as the PKCS#11 module pairs them); empty without either. */
function objectIdOf(args: Readonly<Record<string, unknown>>): { id: Uint8Array; keyId?: string } {
  const hex = args.id as string | undefined;
  const keyId = args.key as string | undefined;
  if (hex !== undefined && keyId !== undefined) throw usageError('give at most one of --id and --key');
  if (keyId !== undefined) {
    if (!isValidKeyId(keyId)) throw usageError(`--key is a key id, got '${keyId}'`);
    return { id: Buffer.from(keyId, 'utf8'), keyId };
  }
  if (hex === undefined) return { id: new Uint8Array(0) };
  if (!HEX.test(hex) || hex.length / 2 > MAX_OBJECT_ID_BYTES) throw usageError(`--id is up to ${MAX_OBJECT_ID_BYTES} bytes in hex, got '${hex}'`);
  return { id: Buffer.from(hex, 'hex') };
}

export const OBJECT_OPERATIONS: readonly OperationSpec[] = [
  {
    group: 'certs',
    command: 'add',
    describe: 'store an X.509 certificate (PEM or DER) next to the keys; prints its id',
    options: {
      key: { type: 'string', describe: "pair it with this key: its CKA_ID becomes the key id's bytes (what the PKCS#11 module shows for the key)" },
      id: { type: 'string', describe: 'or give the CKA_ID itself, in hex (up to 64 bytes; default empty)' },
      label: { type: 'string', describe: 'free text, up to 128 bytes' },
    },
    data: 'the certificate (PEM or DER)',
    examples: [['$0 certs add --key tls-key --label www --in www.pem', 'a certificate for the key tls-key (Java keystores list keys that have one)']],
    run: async ({ session, args, data }) => {
      const der = pemToDer(data, 'CERTIFICATE') ?? data;
      if (der.length === 0) throw inputError('the certificate is empty');
      const { id, keyId } = objectIdOf(args);
      if (keyId !== undefined) await session.keyInfo(keyId); // KEY_NOT_FOUND now rather than an unpaired certificate
      const cert = await session.createCertificate({ der, id, ...(args.label !== undefined && { label: String(args.label) }) });
      return text(cert.certId, { certId: cert.certId, id: Buffer.from(cert.id).toString('hex'), label: cert.label, createdAt: cert.createdAt.toISOString() });
    },
  },
  {
    group: 'certs',
    command: 'list',
    aliases: ['ls'],
    login: false,
    describe: "list the user's certificates (no password: from a container the user may log in from)",
    binaryOutput: true,
    run: async ({ client, user, encoding }) => {
      const { certificates } = await client.listPublicObjects(user, { limit: 1 });
      return text(certificateTable(certificates), { user, certificates: certificates.map((c) => certificateJson(c, encoding)), encoding: encodingName(encoding) });
    },
  },
  {
    group: 'certs',
    command: 'delete <cert>',
    aliases: ['del', 'rm'],
    describe: 'delete a certificate by its id (`vhsm certs list` shows them)',
    positionals: { cert: { type: 'string', describe: 'certificate id (32 hex characters)' } },
    run: async ({ session, args }) => {
      const certId = String(args.cert);
      await session.deleteCertificate(certId);
      return text(`deleted certificate ${certId}`, { deleted: certId });
    },
  },
  {
    command: 'public-objects',
    login: false,
    describe: "what a PKCS#11 consumer sees before logging in: the user's public keys and certificates (no password)",
    binaryOutput: true,
    examples: [['$0 public-objects --user alice --json', 'SPKI and certificate DER in hex']],
    run: async ({ client, user, encoding }) => {
      const { keys, certificates } = await client.publicObjects(user);
      return text(`${publicKeyTable(keys)}\n\n${certificateTable(certificates)}`, {
        user,
        keys: keys.map((k) => publicKeyJson(k, encoding)),
        certificates: certificates.map((c) => certificateJson(c, encoding)),
        encoding: encodingName(encoding),
      });
    },
  },
];
