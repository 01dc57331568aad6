import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import tls, { type DetailedPeerCertificate } from 'node:tls';
import { CliError } from './errors.ts';

/**
 * HTTPS to a server whose certificate is issued by a CA the system does not know (fleetgate's own, made by
 * `fleetgate init`): the CA saved with the login (`login --ca FILE`, or trusted on first use) is added to the
 * system's, per request, so no `NODE_EXTRA_CA_CERTS` is needed and no other connection of the process trusts it.
 */

/** The system's CAs and `ca`, as `https.request`'s `ca` option takes them. */
export function trustedCas(ca: string): string[] {
  return [...tls.rootCertificates, ca];
}

/** Statuses whose answers have no body: `Response` refuses one. */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * A `fetch` for the API client that checks servers' certificates against `trustedCas(ca)`. It takes what the
 * client sends (method, headers, a string body, a signal) and fails as `fetch` does: a `TypeError('fetch failed')`
 * whose `cause` carries the socket's or TLS's error code, or the signal's reason.
 */
export function fetchTrusting(ca: string): typeof fetch {
  const cas = trustedCas(ca);
  return (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const { signal } = init;
      if (signal?.aborted) return reject(signal.reason);
      const request = https.request(url, {
        method: init.method ?? 'GET',
        headers: init.headers as Record<string, string> | undefined,
        ca: cas,
      });
      const onAbort = () => {
        request.destroy();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      request.once('error', (error) => {
        signal?.removeEventListener('abort', onAbort);
        reject(new TypeError('fetch failed', { cause: error }));
      });
      request.once('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.once('error', (error) => reject(new TypeError('fetch failed', { cause: error })));
        response.once('end', () => {
          signal?.removeEventListener('abort', onAbort);
          const status = response.statusCode ?? 500;
          const headers = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
          }
          const body = NULL_BODY_STATUSES.has(status) ? null : Buffer.concat(chunks);
          resolve(new Response(body, { status, statusText: response.statusMessage ?? '', headers }));
        });
      });
      request.end(typeof init.body === 'string' ? init.body : undefined);
    });
}

/** OpenSSL's and Node's codes for a certificate that could not be verified, by what the person should do. */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/** Whether a connection failed because the server's certificate is issued by a CA this client does not trust. */
export function isUntrustedCertificate(code: string | undefined): boolean {
  return code !== undefined && UNTRUSTED.has(code);
}

/**
 * What to do about a TLS failure with `code`, in a sentence that names the command; undefined when `code` is not
 * a certificate problem.
 */
export function tlsAdvice(server: string, code: string | undefined): string | undefined {
  if (isUntrustedCertificate(code)) {
    return (
      `cannot verify the certificate of ${server} (${code}): sign in with the server's CA, ` +
      `\`fleetgate login --server ${server} --ca ca.crt\` (its data directory's tls/ca.crt), or run ` +
      `\`fleetgate login --server ${server}\` on a terminal to check the CA's fingerprint and trust it`
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return (
      `the certificate of ${server} is not issued for this host name: use a name it is issued for, or make ` +
      'a new one on the server with `fleetgate init --force --host <name>`'
    );
  }
  if (code === 'CERT_HAS_EXPIRED') {
    return `the certificate of ${server} has expired: renew it on the server (\`fleetgate init --renew\`)`;
  }
  if (code === 'CERT_NOT_YET_VALID') {
    return `the certificate of ${server} is not valid yet: check this computer's clock and the server's`;
  }
  return undefined;
}

/** What a server's TLS handshake showed: whether its certificate verified, why not, and the certificates sent. */
export interface CertificateProbe {
  authorized: boolean;
  /** OpenSSL's or Node's code when not authorized, e.g. `SELF_SIGNED_CERT_IN_CHAIN`. */
  error: string | undefined;
  /** The certificates the server sent, its own first. */
  chain: X509Certificate[];
}

/**
 * Shakes hands with `server` (an https URL) without sending anything, checking its certificate against the
 * system's CAs and `ca`: so `fleetgate login` knows before it sends a password whether the server is the one it
 * trusts. Fails with a `CliError` when the server cannot be reached.
 */
export function probeCertificate(
  server: string,
  ca: string | undefined,
  timeoutMs = 10_000,
): Promise<CertificateProbe> {
  const url = new URL(server);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port: Number(url.port || 443),
      ...(net.isIP(host) ? {} : { servername: host }),
      ...(ca ? { ca: trustedCas(ca) } : {}),
      rejectUnauthorized: false,
      timeout: timeoutMs,
    });
    socket.once('secureConnect', () => {
      const chain: X509Certificate[] = [];
      let peer: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      const seen = new Set<string>();
      while (peer?.raw && !seen.has(peer.fingerprint256)) {
        seen.add(peer.fingerprint256);
        chain.push(new X509Certificate(peer.raw));
        peer = peer.issuerCertificate;
      }
      const error = socket.authorizationError;
      resolve({
        authorized: socket.authorized,
        error:
          error === undefined || error === null
            ? undefined
            : String((error as { code?: string }).code ?? error),
        chain,
      });
      socket.end();
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new CliError(`${server} did not answer within ${timeoutMs / 1000} s`));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      reject(new CliError(`cannot reach ${server}: ${error.code ?? error.message}`, { cause: error }));
    });
  });
}

/** The CA among the certificates a server sent: a self-signed CA certificate (the chain's end), if one was sent. */
export function caOfChain(chain: readonly X509Certificate[]): X509Certificate | undefined {
  return chain.find((cert) => cert.ca && cert.checkIssued(cert) && cert.verify(cert.publicKey));
}

/** Reads a PEM file of CA certificates for `login --ca`; fails saying what is wrong with it. */
export async function readCaFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new CliError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  try {
    new X509Certificate(text);
  } catch {
    throw new CliError(`${file} does not hold a PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return text;
}
