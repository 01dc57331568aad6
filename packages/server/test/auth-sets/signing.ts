import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';

/** Test helpers that play a Mender device: key pairs and signed auth requests, byte for byte as the client. */

export type TestKeyType = 'rsa' | 'rsa1024' | 'ec256' | 'ec384' | 'ed25519' | 'dsa' | 'secp256k1';

export interface TestKey {
  privateKey: KeyObject;
  publicPem: string;
  privatePem: string;
  ed25519: boolean;
}

export function testKey(type: TestKeyType): TestKey {
  const pair =
    type === 'rsa' || type === 'rsa1024'
      ? generateKeyPairSync('rsa', { modulusLength: type === 'rsa' ? 2048 : 1024 })
      : type === 'ec256' || type === 'ec384' || type === 'secp256k1'
        ? generateKeyPairSync('ec', {
            namedCurve: type === 'ec256' ? 'prime256v1' : type === 'ec384' ? 'secp384r1' : 'secp256k1',
          })
        : type === 'dsa'
          ? generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 })
          : generateKeyPairSync('ed25519');
  return {
    privateKey: pair.privateKey,
    publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    ed25519: type === 'ed25519',
  };
}

/** Mender's id_data: the identity as JSON with sorted keys. */
export function idData(identity: Record<string, string | string[]>): string {
  const sorted: Record<string, string | string[]> = {};
  for (const k of Object.keys(identity).sort()) sorted[k] = identity[k]!;
  return JSON.stringify(sorted);
}

/** The raw body and headers of a signed auth request (the body ends with a newline, as the client's does). */
export function signedAuthRequest(
  key: TestKey,
  identity: Record<string, string | string[]> | string,
  options: { tenantToken?: string; rawBody?: string } = {},
): { payload: Buffer; headers: Record<string, string> } {
  const body =
    options.rawBody ??
    `${JSON.stringify({
      id_data: typeof identity === 'string' ? identity : idData(identity),
      tenant_token: options.tenantToken ?? '',
      pubkey: key.publicPem,
    })}\n`;
  const payload = Buffer.from(body, 'utf8');
  const signature = sign(key.ed25519 ? null : 'sha256', payload, key.privateKey).toString('base64');
  return {
    payload,
    headers: {
      'content-type': 'application/json',
      'x-men-signature': signature,
      authorization: `Bearer ${options.tenantToken ?? ''}`,
    },
  };
}
