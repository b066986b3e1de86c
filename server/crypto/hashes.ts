/**
 * Hash functions as the mechanisms use them: node:crypto's name, output
 * length, and (SHA-2) the DER DigestInfo prefix of RSASSA-PKCS1-v1_5.
 */
export interface HashInfo {
  readonly nodeName: 'sha256' | 'sha384' | 'sha512' | 'sha3-256' | 'sha3-512';
  readonly outputBytes: number;
  /** RFC 8017 §9.2 note 1: DigestInfo up to the digest itself. */
  readonly digestInfoPrefix?: Buffer;
}

export const SHA256: HashInfo = { nodeName: 'sha256', outputBytes: 32, digestInfoPrefix: Buffer.from('3031300d060960864801650304020105000420', 'hex') };
export const SHA384: HashInfo = { nodeName: 'sha384', outputBytes: 48, digestInfoPrefix: Buffer.from('3041300d060960864801650304020205000430', 'hex') };
export const SHA512: HashInfo = { nodeName: 'sha512', outputBytes: 64, digestInfoPrefix: Buffer.from('3051300d060960864801650304020305000440', 'hex') };
export const SHA3_256: HashInfo = { nodeName: 'sha3-256', outputBytes: 32 };
export const SHA3_512: HashInfo = { nodeName: 'sha3-512', outputBytes: 64 };
