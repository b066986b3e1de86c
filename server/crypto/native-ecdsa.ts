/**
 * The native half of digest-input ECDSA (PKCS#11 CKM_ECDSA): OpenSSL's
 * EVP_PKEY_sign over a caller's digest (build/Release/vhsm_ecdsa.node,
 * addon/ecdsa.cc), ~25× faster than @noble's JavaScript for P-256 and
 * constant-time in OpenSSL's implementation. @noble stays the independent
 * check in the tests.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../../netlink/addon.js';

interface NativeEcdsa {
  /** DER ECDSA-Sig-Value over `digest` (1..1024 bytes), `group` an OpenSSL curve name, `scalar` the big-endian private scalar. */
  signDigest(group: string, scalar: Uint8Array, digest: Uint8Array): Buffer;
}

export const ECDSA_ADDON_RELATIVE_PATH = join('build', 'Release', 'vhsm_ecdsa.node');

let loaded: NativeEcdsa | undefined;

export function nativeEcdsa(): NativeEcdsa {
  if (!loaded) {
    const path = join(packageRoot(), ECDSA_ADDON_RELATIVE_PATH);
    if (!existsSync(path)) throw new Error(`ECDSA addon not built: ${path} is missing (run npm run build:addon)`);
    loaded = createRequire(import.meta.url)(path) as NativeEcdsa;
  }
  return loaded;
}
