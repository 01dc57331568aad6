#!/usr/bin/env node
/**
 * What a browser downloads before the sign-in page and the dashboard show: the scripts and styles that
 * dist/index.html loads (its module script, the chunks it preloads, its stylesheets), gzipped as the server sends
 * them, against the 300 KB budget of issue 14. Every other page is a chunk of its own, fetched when opened;
 * those are listed too. Builds first when the sources are newer than dist/.
 *
 * `npm run size:web`
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { distDir, ensureWebBuilt } from './build.mjs';

const BUDGET_KB = 300;
await ensureWebBuilt((line) => process.stderr.write(`${line}\n`));
const html = fs.readFileSync(path.join(distDir, 'index.html'), 'utf8');
const initial = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
const gzipKb = (file) => zlib.gzipSync(fs.readFileSync(path.join(distDir, file)), { level: 9 }).length / 1024;
const rows = initial.map((file) => ({ file, kb: gzipKb(file) }));
const total = rows.reduce((sum, r) => sum + r.kb, 0);
for (const r of rows) console.log(`${r.kb.toFixed(1).padStart(8)} KB  ${r.file}`);
console.log(
  `${total.toFixed(1).padStart(8)} KB  initial JavaScript and CSS of sign-in + dashboard, gzipped (budget ${BUDGET_KB} KB: ${total <= BUDGET_KB ? 'met' : 'NOT met'})`,
);
const lazy = fs
  .readdirSync(path.join(distDir, 'assets'))
  .filter((f) => /\.(js|css)$/.test(f) && !initial.includes(`assets/${f}`));
console.log(`\nloaded when their page opens (${lazy.length} chunks):`);
for (const f of lazy) console.log(`${gzipKb(`assets/${f}`).toFixed(1).padStart(8)} KB  assets/${f}`);
process.exitCode = total <= BUDGET_KB ? 0 : 1;
