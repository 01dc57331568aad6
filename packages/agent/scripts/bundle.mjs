#!/usr/bin/env node
/**
 * Bundles the agent (its TypeScript and @fleetgate/protocol's) into one ES module that plain Node runs:
 * dist/fleetgate-agent.mjs, plus dist/inputs.json listing the sources it was built from.
 *
 * Why: running TypeScript through tsx's loader costs a loader worker thread with its own V8 heap, about
 * 30 MB of resident memory — half of the agent's budget on a small device. Packages with native parts or
 * their own loading (ws, bufferutil, node-pty, zod) stay external and load from node_modules as usual.
 *
 * bin/fleetgate-agent.js runs this when the bundle is missing or older than a source, so editing the
 * sources never runs stale code. `npm run build -w @fleetgate/agent` runs it by hand.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildSync } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
fs.mkdirSync(dist, { recursive: true });
// Built next to the final files and renamed into place: two agents starting at once never see half a file.
const temporary = path.join(dist, `.fleetgate-agent.${process.pid}.mjs`);
const result = buildSync({
  entryPoints: [path.join(root, 'src/main.ts')],
  outfile: temporary,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['ws', 'bufferutil', 'utf-8-validate', 'node-pty', 'zod'],
  metafile: true,
  logLevel: 'error',
  // The package.json import needs no require() shim; the banner gives bundled CommonJS code one anyway.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
});
const inputs = Object.keys(result.metafile.inputs).map((input) => path.resolve(process.cwd(), input));
fs.writeFileSync(path.join(dist, 'inputs.json'), `${JSON.stringify(inputs, null, 2)}\n`);
fs.renameSync(temporary, path.join(dist, 'fleetgate-agent.mjs'));
