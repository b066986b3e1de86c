/**
 * The elliptic curves of the EC key types, with what each engine calls them:
 * OpenSSL's curve name (what node:crypto reports), the JWK name, the SEC1
 * OID, and the @noble/curves implementation (used where OpenSSL 3.0 has no
 * API: ECDSA over a pre-computed digest, BIP-340, raw scalar checks).
 */
import type { ECDSA } from '@noble/curves/abstract/weierstrass.js';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { KEY_TYPES } from '../../proto/index.js';

export interface EcCurve {
  readonly keyType: number;
  /** asymmetricKeyDetails.namedCurve, also accepted by generateKeyPair. */
  readonly nodeName: 'prime256v1' | 'secp384r1' | 'secp521r1' | 'secp256k1';
  readonly jwkName: string;
  /** DER of the curve's OBJECT IDENTIFIER, tag and length included. */
  readonly oid: Buffer;
  readonly scalarBytes: number;
  readonly noble: ECDSA;
  /** Signatures are normalised to low S (secp256k1: BIP-146 / EIP-2 expect it). */
  readonly lowS: boolean;
  /**
   * OpenSSL's generic code for this curve takes a millisecond or more per
   * operation (P-256 has an optimised one: ~35 µs), so node:crypto runs it
   * in the libuv pool rather than on the event loop.
   */
  readonly offload: boolean;
}

type Row = Omit<EcCurve, 'oid'> & { readonly oidHex: string };
const curve = ({ oidHex, ...row }: Row): EcCurve => ({ ...row, oid: Buffer.from(oidHex, 'hex') });

export const P256 = curve({ keyType: KEY_TYPES['ec-p256'], nodeName: 'prime256v1', jwkName: 'P-256', oidHex: '06082a8648ce3d030107', scalarBytes: 32, noble: p256, lowS: false, offload: false });
export const P384 = curve({ keyType: KEY_TYPES['ec-p384'], nodeName: 'secp384r1', jwkName: 'P-384', oidHex: '06052b81040022', scalarBytes: 48, noble: p384, lowS: false, offload: true });
export const P521 = curve({ keyType: KEY_TYPES['ec-p521'], nodeName: 'secp521r1', jwkName: 'P-521', oidHex: '06052b81040023', scalarBytes: 66, noble: p521, lowS: false, offload: true });
export const SECP256K1 = curve({
  keyType: KEY_TYPES['ec-secp256k1'],
  nodeName: 'secp256k1',
  jwkName: 'secp256k1',
  oidHex: '06052b8104000a',
  scalarBytes: 32,
  noble: secp256k1,
  lowS: true,
  offload: true,
});

const BY_KEY_TYPE: ReadonlyMap<number, EcCurve> = new Map([P256, P384, P521, SECP256K1].map((row) => [row.keyType, row]));

export function ecCurveOf(keyType: number): EcCurve | undefined {
  return BY_KEY_TYPE.get(keyType);
}
