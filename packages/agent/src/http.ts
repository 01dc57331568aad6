/**
 * One HTTP(S) request to the server, trusting the configured CA. Node's `fetch` cannot take a CA without
 * undici's Agent, and a device agent makes a handful of requests in its life, so plain `http.request`.
 */
import http from 'node:http';
import https from 'node:https';

/** Where the server is and which CA to trust for it. */
export interface ServerEndpoint {
  /** Base URL without a trailing slash, `https://host:port`. */
  url: string;
  /** PEM CA certificate(s); undefined: the system CAs. */
  ca?: string | Buffer;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Largest answer read, in bytes: the agent only ever expects a token or a small JSON object. */
const MAX_ANSWER = 256 * 1024;

export function request(
  server: ServerEndpoint,
  method: string,
  pathname: string,
  options: { body?: string | Buffer; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  const url = new URL(pathname, `${server.url}/`);
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(
      url,
      {
        method,
        headers: options.headers,
        agent: false,
        timeout: options.timeoutMs ?? 30_000,
        ...(secure && server.ca ? { ca: server.ca } : {}),
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER) {
            response.destroy(
              new Error(`the answer to ${method} ${url.pathname} is larger than ${MAX_ANSWER} bytes`),
            );
            return;
          }
          chunks.push(chunk);
        });
        response.on('error', reject);
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: no answer in time`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The API's error `{"error":{"code","message","details"}}` in an answer, if it has one. */
export function apiErrorOf(answer: HttpAnswer): { code?: string; message?: string; reason?: string } {
  try {
    const body = JSON.parse(answer.text) as {
      error?: { code?: unknown; message?: unknown; details?: { reason?: unknown } };
    };
    const error = body.error;
    if (!error) return {};
    return {
      ...(typeof error.code === 'string' ? { code: error.code } : {}),
      ...(typeof error.message === 'string' ? { message: error.message } : {}),
      ...(typeof error.details?.reason === 'string' ? { reason: error.details.reason } : {}),
    };
  } catch {
    return {};
  }
}
