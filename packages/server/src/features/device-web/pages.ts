import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * fleetgate's own answers on a device origin (a refused grant, no session, the device offline): small HTML pages
 * that say what happened and what to do next, never cached, never framed.
 */

/** Text inside an element (no attribute values are ever built from it): `&`, `<` and `>` are all that matter. */
const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };
const escapeHtml = (text: string) => text.replace(/[&<>]/g, (c) => escapes[c]!);

const reasons: Record<number, string> = {
  400: 'Bad request',
  401: 'Not signed in to this device page',
  403: 'Refused',
  404: 'No such device page',
  409: 'Not available',
  502: 'The device did not answer',
  503: 'Device unavailable',
};

const SECURITY_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
};

function html(status: number, message: string): string {
  const title = reasons[status] ?? 'Error';
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fleetgate: ${escapeHtml(title)}</title>` +
    '<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}</style>' +
    `</head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>` +
    `<p><small>fleetgate device web page (${status})</small></p></body></html>`
  );
}

/** Answers a request on a device origin with one of fleetgate's pages. */
export function sendPage(
  response: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = html(status, message);
  response.writeHead(status, {
    ...SECURITY_HEADERS,
    ...headers,
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(body);
}

/** Refuses an upgrade on a device origin with one of fleetgate's pages, and drops the socket. */
export function refusePage(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = html(status, message);
  const head = [
    `HTTP/1.1 ${status} ${reasons[status] ?? 'Error'}`,
    'Content-Type: text/html; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
}
