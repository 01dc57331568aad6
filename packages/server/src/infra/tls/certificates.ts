// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill loaded
// before it is evaluated. ESM evaluates imports in order, so this side-effect import must stay first.
import 'reflect-metadata';
import { createPrivateKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import net from 'node:net';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** ECDSA P-256 with SHA-256: small keys, fast handshakes, understood by every TLS client we target. */
const ecdsaP256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

const dayMs = 24 * 3600 * 1000;
/** Backdating `notBefore` a little lets devices whose clocks run slightly behind accept a fresh certificate. */
const clockSkewMs = 10 * 60 * 1000;

/** A certificate and its private key, both PEM (the key as unencrypted PKCS#8). */
export interface PemPair {
  cert: string;
  key: string;
}

export interface IssueOptions {
  /** Time the validity starts from. Default now. */
  now?: Date;
}

/** Which kind of subjectAltName a host name becomes. */
export interface SubjectAltName {
  type: 'dns' | 'ip';
  value: string;
}

const dnsName = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * The subjectAltNames of a server certificate: every given host (IP addresses as IP entries, names as DNS
 * entries) plus `localhost`, `127.0.0.1` and `::1`, without duplicates. Throws on something that is neither
 * an IP address nor a host name.
 */
export function subjectAltNamesFor(hosts: readonly string[]): SubjectAltName[] {
  const names: SubjectAltName[] = [];
  const seen = new Set<string>();
  for (const raw of [...hosts, 'localhost', '127.0.0.1', '::1']) {
    const host = raw.trim().replace(/^\[(.*)\]$/, '$1');
    const type = net.isIP(host) ? 'ip' : 'dns';
    if (type === 'dns' && (host.length > 253 || !dnsName.test(host))) {
      throw new Error(`"${raw}" is neither a host name nor an IP address`);
    }
    const value = type === 'dns' ? host.toLowerCase() : host;
    if (seen.has(`${type}:${value}`)) continue;
    seen.add(`${type}:${value}`);
    names.push({ type, value });
  }
  return names;
}

/** A positive 128-bit serial number, hex (RFC 5280 allows at most 20 octets; the top bit must be clear). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ecdsaP256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

function privateKeyPem(key: CryptoKey): string {
  return KeyObject.from(key as webcrypto.CryptoKey)
    .export({ type: 'pkcs8', format: 'pem' })
    .toString();
}

/** A distinguished name value with the characters that would break the `CN=…, O=…` string escaped. */
function dnValue(text: string): string {
  return text.replace(/([,+"\\<>;=])/g, '\\$1');
}

/** Creates a certificate authority: ECDSA P-256, valid `years` (default 10), for signing server certificates. */
export async function createCertificateAuthority(
  options: IssueOptions & { commonName?: string; years?: number } = {},
): Promise<PemPair> {
  const now = options.now ?? new Date();
  const keys = await generateKeys();
  const years = options.years ?? 10;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${dnValue(options.commonName ?? `fleetgate local CA ${now.toISOString().slice(0, 10)}`)}, O=fleetgate`,
    notBefore: new Date(now.getTime() - clockSkewMs),
    notAfter: new Date(now.getTime() + years * 365.25 * dayMs),
    keys,
    signingAlgorithm: ecdsaP256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: privateKeyPem(keys.privateKey) };
}

/**
 * Issues a server certificate signed by `ca`: ECDSA P-256, valid `days` (default 730, under the 825 days
 * Apple clients accept), for the given subjectAltNames, usable only for TLS server authentication.
 */
export async function issueServerCertificate(
  ca: PemPair,
  altNames: readonly SubjectAltName[],
  options: IssueOptions & { days?: number } = {},
): Promise<PemPair> {
  const now = options.now ?? new Date();
  const caCert = new x509.X509Certificate(ca.cert);
  const caKeyDer = createPrivateKey(ca.key).export({ type: 'pkcs8', format: 'der' });
  let caKey: CryptoKey;
  try {
    caKey = (await webcrypto.subtle.importKey('pkcs8', caKeyDer, ecdsaP256, false, ['sign'])) as CryptoKey;
  } catch (error) {
    throw new Error('the CA key is not an ECDSA P-256 key', { cause: error });
  }
  const keys = await generateKeys();
  const first = altNames[0]?.value ?? 'localhost';
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${dnValue(first)}, O=fleetgate`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - clockSkewMs),
    notAfter: new Date(now.getTime() + (options.days ?? 730) * dayMs),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ecdsaP256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(altNames.map(({ type, value }) => ({ type, value }))),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { cert: cert.toString('pem'), key: privateKeyPem(keys.privateKey) };
}
