/**
 * Certificates (PKCS#11 CKO_CERTIFICATE): stored for the session's user,
 * deleted by id. They are listed with the public keys (public-ops.ts).
 */
import { checkCertificateDer } from '../crypto/x509.js';
import { VhsmFailure } from '../errors.js';
import type { Handler } from '../context.js';
import { newServerId } from '../rules.js';
import { toCertificateInfo } from './convert.js';

export const createCertificate: Handler<'createCertificate'> = {
  needsSession: true,
  async run(ctx, request) {
    checkCertificateDer(request.der);
    const { certificates, clock, limits } = ctx.services;
    const cert = { certId: newServerId(), objectId: Buffer.from(request.objectId), label: request.label, der: Buffer.from(request.der), createdMs: clock() };
    ctx.audit.keyId = cert.certId;
    await ctx.commit((tx) => certificates.insert(tx, ctx.session.userId, cert, limits.maxCertificatesPerUser));
    return { createCertificate: toCertificateInfo(cert) };
  },
};

export const deleteCertificate: Handler<'deleteCertificate'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.keyId = request.certId;
    await ctx.commit(async (tx) => {
      if (!(await tx.deleteCertificate(ctx.session.userId, request.certId))) throw new VhsmFailure('OBJECT_NOT_FOUND', `no certificate ${request.certId}`);
    });
    return { deleteCertificate: {} };
  },
};
