/**
 * X.509 certificates are public data, stored as given, but only when the
 * bytes are exactly one DER certificate. node:crypto's parser also takes PEM
 * and ignores bytes after the certificate, so the DER it re-encodes must be
 * the input itself.
 */
import { X509Certificate } from 'node:crypto';
import { invalid } from './key-material.js';

export function checkCertificateDer(der: Uint8Array): void {
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(der);
  } catch {
    throw invalid('der is not an X.509 certificate');
  }
  if (!parsed.raw.equals(der)) throw invalid('der must be exactly one DER-encoded X.509 certificate (no PEM, nothing after it)');
}
