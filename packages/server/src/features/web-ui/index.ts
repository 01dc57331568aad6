import fs from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { sendError, type TypedApp } from '../../infra/http/index.ts';

/**
 * The admin web UI: the static files `packages/web` builds (a client of the public API like any other), served
 * at `/`. Vite names every file under `assets/` by its content hash, so those are cached for a year; `index.html`
 * names them and is never cached, so a new build reaches every browser on its next load. Any other GET for a
 * page (`/devices/12`) answers `index.html`, where the UI's router takes over; `/api/*` keeps its JSON errors.
 */
export async function registerWebUi(app: TypedApp, webRoot: string | undefined): Promise<void> {
  const indexFile = webRoot && path.join(webRoot, 'index.html');
  if (!webRoot || !indexFile || !fs.existsSync(indexFile)) {
    app.get('/', { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
      sendError(
        reply,
        'not_found',
        webRoot
          ? `the web UI is not built in ${webRoot}: run \`npm run build -w @fleetgate/web\`; the API docs are at /api/docs`
          : 'this server runs without its web UI (fleetgate serve builds and serves it); the API docs are at /api/docs',
      ),
    );
    return;
  }
  const index = fs.readFileSync(indexFile);
  const sendIndex = (reply: FastifyReply) =>
    securityHeaders(reply).type('text/html; charset=utf-8').send(index);

  await app.register(fastifyStatic, {
    root: webRoot,
    prefix: '/',
    // Routes for the files there now (not a wildcard): unknown paths reach the page fallback below.
    wildcard: false,
    index: false,
    // `vite build` writes .br and .gz beside each asset (packages/web/scripts/build.mjs).
    preCompressed: true,
    cacheControl: false,
    setHeaders(res, file) {
      res.setHeader(
        'cache-control',
        file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
      res.setHeader('x-content-type-options', 'nosniff');
    },
  });
  app.get('/', { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
    sendIndex(reply),
  );
  app.get('/*', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    if (!isPageRequest(request))
      return sendError(reply, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`);
    return sendIndex(reply);
  });
}

/** A browser asking for a page of the UI: not the API, not a file with an extension (a missing asset is 404). */
function isPageRequest(request: FastifyRequest): boolean {
  const pathname = request.url.split('?')[0] ?? '';
  return !pathname.startsWith('/api/') && !path.posix.basename(pathname).includes('.');
}

/**
 * The page may run only its own scripts and talk only to its own origin; Mantine sets inline styles, so styles
 * allow them. No other site may frame it (clickjacking). `'wasm-unsafe-eval'` lets the page compile WebAssembly
 * (asciinema-player's terminal emulator, on the session replay page) and nothing else: `eval` and
 * `new Function` stay refused.
 */
function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('cache-control', 'no-cache')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'same-origin')
    .header('x-frame-options', 'DENY')
    .header(
      'content-security-policy',
      "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
        "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
    );
}
