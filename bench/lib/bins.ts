/**
 * fleetgate's programs, and the Node flags each one's first line gives it (`#!/usr/bin/env -S node <flags>`):
 * the benches start them with `process.execPath`, which skips that line, so they pass the same flags and
 * measure the programs as people run them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI_BIN = path.join(root, 'packages/cli/bin/fleetgate.js');
export const AGENT_BIN = path.join(root, 'packages/agent/bin/fleetgate-agent.js');

/**
 * The Node flags in `bin`'s first line: `--initial-heap-size=96` from `#!/usr/bin/env -S node --initial-heap-size=96`.
 * None with `FLEETGATE_BENCH_NODE_FLAGS=none` in the environment, to measure what the flags change.
 */
export function nodeFlagsOf(bin: string): string[] {
  if (process.env.FLEETGATE_BENCH_NODE_FLAGS === 'none') return [];
  const first = fs.readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  const words = first.replace(/^#!\s*/, '').split(/\s+/);
  const node = words.indexOf('node');
  return node < 0 ? [] : words.slice(node + 1).filter((word) => word.startsWith('--'));
}
