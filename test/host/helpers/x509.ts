/**
 * Small self-signed X.509 certificates for tests, built here in DER (no
 * openssl binary needed) and signed with node:crypto: any subject, and any
 * size up to the server's limit through a padding extension.
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

/** A DER TLV (definite length, long form from 128 bytes). */
export function tlv(tag: number, ...contents: Uint8Array[]): Buffer {
  const body = Buffer.concat(contents);
  const length = body.length;
  let header: number[];
  if (length < 0x80) header = [tag, length];
  else if (length < 0x100) header = [tag, 0x81, length];
  else if (length < 0x10000) header = [tag, 0x82, length >> 8, length & 0xff];
  else header = [tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff];
  return Buffer.concat([Buffer.from(header), body]);
}

const seq = (...contents: Uint8Array[]): Buffer => tlv(0x30, ...contents);

function oid(dotted: string): Buffer {
  const [first, second, ...rest] = dotted.split('.').map(Number);
  const bytes = [first! * 40 + second!];
  for (const arc of rest) {
    const groups: number[] = [];
    for (let value = arc; ; value = Math.floor(value / 128)) {
      groups.unshift(value % 128);
      if (value < 128) break;
    }
    bytes.push(...groups.map((group, i) => (i < groups.length - 1 ? group | 0x80 : group)));
  }
  return tlv(0x06, Buffer.from(bytes));
}

const utcTime = (date: Date): Buffer => tlv(0x17, Buffer.from(`${date.toISOString().slice(2, 19).replace(/[-:T]/g, '')}Z`));
const name = (commonName: string): Buffer => seq(tlv(0x31, seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
const ECDSA_WITH_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

export interface CertificateOptions {
  readonly commonName?: string;
  /** The certified key (default: a fresh P-256 key signs its own certificate). */
  readonly publicKey?: KeyObject;
  /** Bytes of an extra non-critical extension, to reach a size. */
  readonly padding?: number;
}

/** A certificate signed by a fresh P-256 key (self-signed unless `publicKey` names another key). */
export function makeCertificate(options: CertificateOptions = {}): Buffer {
  const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const subjectKey = options.publicKey ?? createPublicKey(signer.privateKey);
  const cn = name(options.commonName ?? 'vhsm test');
  const padding = options.padding ?? 0;
  const extensions = padding > 0 ? [tlv(0xa3, seq(seq(oid('1.3.6.1.4.1.55555.1'), tlv(0x04, Buffer.alloc(padding, 0x5a)))))] : [];
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.of(2))), // v3
    tlv(0x02, Buffer.of(0x01, 0x23, 0x45, 0x67)),
    ECDSA_WITH_SHA256,
    cn,
    seq(utcTime(new Date('2026-01-01T00:00:00Z')), utcTime(new Date('2036-01-01T00:00:00Z'))),
    cn,
    subjectKey.export({ type: 'spki', format: 'der' }),
    ...extensions,
  );
  const signature = sign('sha256', tbs, signer.privateKey);
  return seq(tbs, ECDSA_WITH_SHA256, tlv(0x03, Buffer.of(0), signature));
}

/** A certificate of exactly `bytes` bytes of DER (give or take nothing: it retries the padding). */
export function certificateOfSize(bytes: number, commonName = 'sized'): Buffer {
  let padding = Math.max(0, bytes - makeCertificate({ commonName }).length - 8);
  for (let attempt = 0; attempt < 20; attempt++) {
    const cert = makeCertificate({ commonName, padding });
    if (cert.length === bytes) return cert;
    padding = Math.max(1, padding + bytes - cert.length);
  }
  throw new Error(`could not make a certificate of ${bytes} bytes`);
}

/** PEM armour for DER. */
export function pem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const lines = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
