#!/usr/bin/env -S node --initial-heap-size=96
// Runs the agent from its bundle (scripts/bundle.mjs) when it is up to date with the sources, building it
// first when it is missing or stale; falls back to running the TypeScript through tsx's loader (as
// bin/fleetgate.js does for the CLI) if the bundle cannot be built, e.g. on a read-only install. The
// bundle exists for memory: tsx's loader thread alone costs about 30 MB of RSS on the device.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import v8 from 'node:v8';

// Node flags, in the first line (`env -S`): V8 sizes its heap once, before any code runs, so flags set later
// with `v8.setFlagsFromString` do not change it. `--initial-heap-size=96` (MB) is a limit, not memory taken: a
// heap this small would otherwise start a full garbage collection every 10 to 40 MB of stream Buffers going
// through (their bytes count against the limit), 50 of them per 512 MiB relayed. With it, the agent's CPU per
// MiB relayed halves and its idle RSS stays where it was (53 MiB; bench/tunnel, BENCHMARKS.md).
//
// Memory on the device (target: idle RSS <= 60 MB, where Node alone is about 40 MB): no optimizing compiler
// while starting: start-up code (config, schemas, the TLS handshake) runs once and gains nothing from
// TurboFan, but compiling it leaves about 6 MB of compiler code and memory resident for the agent's whole idle
// life. It is switched back on once the agent has settled, so stream traffic under load is optimized as usual.
v8.setFlagsFromString('--no-opt');
setTimeout(() => v8.setFlagsFromString('--opt'), 10_000).unref();

const bundle = new URL('../dist/fleetgate-agent.mjs', import.meta.url);
const inputs = new URL('../dist/inputs.json', import.meta.url);

function bundleIsFresh() {
  try {
    const builtAt = fs.statSync(bundle).mtimeMs;
    const sources = JSON.parse(fs.readFileSync(inputs, 'utf8'));
    return sources.every((source) => fs.statSync(source).mtimeMs <= builtAt);
  } catch {
    return false;
  }
}

function buildBundle() {
  const script = new URL('../scripts/bundle.mjs', import.meta.url);
  const result = spawnSync(process.execPath, [script.pathname], { stdio: ['ignore', 'ignore', 'pipe'] });
  return result.status === 0;
}

if (bundleIsFresh() || (buildBundle() && bundleIsFresh())) {
  await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
