#!/usr/bin/env -S node --initial-heap-size=96
// `--initial-heap-size=96` (MB, a limit, not memory taken): without it V8 starts a full garbage collection every
// 10 to 40 MB of socket Buffers that `fleetgate serve` or `fleetgate tunnel` relays, since their bytes count
// against a small heap's limit; with it, they are freed by the cheap young-generation collections alone, and
// the CPU per MiB relayed falls by a third to a half (bench/tunnel, BENCHMARKS.md). It must be a Node flag
// (here, through `env -S`): V8 sizes its heap before any code runs.
//
// Runs the CLI from its build (scripts/build.mjs: dist/fleetgate.mjs), building it first when it is missing or
// older than a source, as bin/fleetgate-agent.js does for the agent. Without a TypeScript loader at run time,
// `fleetgate serve` is ready in two thirds of the time and holds about 45 MiB less once idle (bench/start,
// BENCHMARKS.md). It runs the TypeScript through tsx's loader instead when FLEETGATE_FROM_SOURCE=1 is set, or
// when the build cannot be made (a read-only install whose sources changed), saying so.
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
// The freshness test only: the build script loads esbuild when it builds, not when imported.
import { buildIsFresh, distEntry } from '../scripts/build.mjs';

function build() {
  const script = new URL('../scripts/build.mjs', import.meta.url);
  // Its errors (a syntax error in a source, a folder it cannot write) go to our standard error.
  const result = spawnSync(process.execPath, [script.pathname, '--quiet'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return result.status === 0;
}

async function runFromSources() {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}

if (process.env.FLEETGATE_FROM_SOURCE === '1') {
  await runFromSources();
} else if (buildIsFresh() || (build() && buildIsFresh())) {
  await import(pathToFileURL(distEntry).href);
} else {
  process.stderr.write(
    'fleetgate: could not build dist/ (npm run build -w @fleetgate/cli); running from the TypeScript sources\n',
  );
  await runFromSources();
}
