#!/usr/bin/env node
/**
 * Builds the admin web UI into dist/ when it is missing or older than a source, so `fleetgate serve` (and the
 * browser tests) never serve stale pages and a first `npm start` needs nothing but `npm ci` before it. Each
 * built file under dist/assets also gets .br and .gz siblings, which the server sends to browsers that accept
 * them (Mantine's styles and React shrink to a fifth).
 *
 * `npm run build -w @fleetgate/web` runs it by hand (always building); `ensureWebBuilt()` is what `serve` calls.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export const webRoot = path.resolve(import.meta.dirname, '..');
export const distDir = path.join(webRoot, 'dist');

/** The files a build reads: the sources, the page, and the build's own configuration. */
function sourceFiles() {
  const files = ['index.html', 'vite.config.ts', 'package.json'].map((f) => path.join(webRoot, f));
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else files.push(file);
    }
  };
  walk(path.join(webRoot, 'src'));
  return files;
}

/** True when dist/index.html is missing or older than any source. */
export function webBuildIsStale() {
  const built = path.join(distDir, 'index.html');
  if (!fs.existsSync(built)) return true;
  const builtAt = fs.statSync(built).mtimeMs;
  return sourceFiles().some((file) => fs.statSync(file).mtimeMs > builtAt);
}

/** Runs `vite build` and compresses what it wrote. `log` gets one line per step. */
export async function buildWeb(log = (line) => process.stdout.write(`${line}\n`)) {
  const started = Date.now();
  log('building the web UI (vite build)…');
  const { build } = await import('vite');
  await build({ root: webRoot, logLevel: 'warn', configFile: path.join(webRoot, 'vite.config.ts') });
  const assets = path.join(distDir, 'assets');
  for (const name of fs.readdirSync(assets)) {
    if (!/\.(js|css|svg|json)$/.test(name)) continue;
    const file = path.join(assets, name);
    const bytes = fs.readFileSync(file);
    // Under a kilobyte, the headers cost more than compression saves.
    if (bytes.length < 1024) continue;
    fs.writeFileSync(`${file}.gz`, zlib.gzipSync(bytes, { level: 9 }));
    fs.writeFileSync(
      `${file}.br`,
      zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }),
    );
  }
  log(`built the web UI in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** Builds the UI when it is stale; answers the folder to serve. */
export async function ensureWebBuilt(log) {
  if (webBuildIsStale()) await buildWeb(log);
  return distDir;
}

if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) await buildWeb();
