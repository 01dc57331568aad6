#!/usr/bin/env -S node --initial-heap-size=96
// `--initial-heap-size=96` (MB, a limit, not memory taken): without it V8 starts a full garbage collection every
// 10 to 40 MB of socket Buffers that `fleetgate serve` or `fleetgate tunnel` relays, since their bytes count
// against a small heap's limit; with it, they are freed by the cheap young-generation collections alone, and
// the CPU per MiB relayed falls by a third to a half (bench/tunnel, BENCHMARKS.md). It must be a Node flag
// (here, through `env -S`): V8 sizes its heap before any code runs.
// Runs the TypeScript CLI through tsx's loader, so `npx fleetgate` works straight after `npm ci`.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
