#!/usr/bin/env node
/**
 * Builds the `fleetgate` command into plain JavaScript that Node runs without a TypeScript loader:
 * dist/fleetgate.mjs (the CLI's entry) and dist/chunks/ (the server, the agent and the rest, each loaded only by
 * the commands that need it), plus dist/inputs.json listing the files the build read. dist/server.mjs is the
 * server alone, for the benchmarks' server processes.
 *
 * Why: running the TypeScript through tsx's loader costs a loader thread with a V8 heap of its own and a pass over
 * every source file at each start (from tsx's cache at best): `fleetgate serve` idled at 46 MiB more resident
 * memory for its whole life, and took 1.5 times as long to be ready (bench/start, BENCHMARKS.md).
 *
 * What is bundled: our own TypeScript, found by following imports from src/main.ts (so a new source file needs
 * no list here), across the workspace packages it imports (@fleetgate/server, @fleetgate/agent,
 * @fleetgate/protocol). Every other package stays external and loads from node_modules at run time as before:
 * native add-ons (better-sqlite3, ssh2 and cpu-features, bufferutil, node-pty), packages that find their own
 * files on disk (@fastify/swagger-ui, pino's worker threads), pg and the rest. So does @fleetgate/web/build,
 * which is JavaScript already and loads Vite from the web package's own node_modules.
 *
 * Split into chunks rather than one file: otherwise every command, `fleetgate devices ls` too, would load
 * Fastify, Kysely, ssh2 and the SQLite driver at start, because a bundle hoists its external imports.
 *
 * bin/fleetgate.js runs this when the build is missing or older than one of its inputs (so editing the sources
 * never runs stale code), `npm ci` runs it (the workspace's `prepare` script), and
 * `npm run build -w @fleetgate/cli` runs it by hand.
 */
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
const repository = path.resolve(root, '../..');
/** The CLI's entry in the build, and the list of the files it was built from (absolute paths). */
export const distEntry = path.join(dist, 'fleetgate.mjs');
const inputsFile = path.join(dist, 'inputs.json');

/** True when the build exists and none of its inputs (a source, this script) changed since: a missing one counts. */
export function buildIsFresh() {
  try {
    const builtAt = fs.statSync(distEntry).mtimeMs;
    const inputs = JSON.parse(fs.readFileSync(inputsFile, 'utf8'));
    return inputs.every((input) => fs.statSync(input).mtimeMs <= builtAt);
  } catch {
    return false;
  }
}

/** Packages of ours that are bundled from their TypeScript; every other bare import stays external. */
const BUNDLED = /^@fleetgate\/(server|agent|protocol)(\/|$)/;

const externalPackages = {
  name: 'external-packages',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (BUNDLED.test(args.path) || path.isAbsolute(args.path)) return undefined;
      return { path: args.path, external: true };
    });
  },
};

/**
 * Builds, then writes every output next to its final name and renames it into place, chunks first and the entry
 * last: a fleetgate starting during a build (two test files at once, say) reads either the old entry with its
 * chunks or the new one with its own, never half a file. Chunks are named by their content hash, so a build
 * never overwrites a chunk that an older entry still loads.
 */
export async function buildCli() {
  const started = Date.now();
  // Loaded here: bin/fleetgate.js imports this module at every start for `buildIsFresh` alone.
  const { build } = await import('esbuild');
  const result = await build({
    // The code the two entries share is in chunks.
    entryPoints: {
      fleetgate: path.join(root, 'src/main.ts'),
      server: path.join(repository, 'packages/server/src/index.ts'),
    },
    outdir: dist,
    chunkNames: 'chunks/[name]-[hash]',
    entryNames: '[name]',
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // The bundle keeps our names and one comment per source file, so a stack trace reads without a map; the map
    // is there for `node --enable-source-maps` (off by default: it slows every start and every stack trace).
    sourcemap: 'linked',
    plugins: [externalPackages],
    metafile: true,
    write: false,
    logLevel: 'error',
  });
  // Chunks first, then the entries, the CLI's last: an entry never lands before a chunk it imports.
  const rank = (file) =>
    file.path === distEntry ? 2 : file.path.startsWith(path.join(dist, 'chunks')) ? 0 : 1;
  const ordered = [...result.outputFiles].sort((a, b) => rank(a) - rank(b));
  for (const file of ordered) {
    fs.mkdirSync(path.dirname(file.path), { recursive: true });
    const temporary = `${file.path}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, file.contents);
    fs.renameSync(temporary, file.path);
  }
  // The inputs: the sources bundled, and what decides how they are built (this script, the TypeScript settings).
  const inputs = [
    ...Object.keys(result.metafile.inputs).map((input) => path.resolve(process.cwd(), input)),
    import.meta.filename,
    path.join(repository, 'tsconfig.json'),
  ];
  fs.writeFileSync(`${inputsFile}.${process.pid}.tmp`, `${JSON.stringify(inputs, null, 2)}\n`);
  fs.renameSync(`${inputsFile}.${process.pid}.tmp`, inputsFile);
  removeOldChunks(new Set(result.outputFiles.map((file) => file.path)));
  return { ms: Date.now() - started, files: result.outputFiles.length };
}

/**
 * Chunks of earlier builds go once nothing is likely to still load them: a fleetgate started from an older entry
 * loads its chunks within its first seconds (the server's at `serve`), so one older than an hour is left over.
 */
function removeOldChunks(current) {
  const chunks = path.join(dist, 'chunks');
  const hourAgo = Date.now() - 3_600_000;
  for (const name of fs.readdirSync(chunks)) {
    const file = path.join(chunks, name);
    if (current.has(file) || current.has(file.replace(/\.map$/, ''))) continue;
    if (fs.statSync(file).mtimeMs < hourAgo) fs.rmSync(file, { force: true });
  }
}

// `node scripts/build.mjs [--if-stale] [--quiet]`: `--if-stale` builds only when `buildIsFresh()` says no.
if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  if (process.argv.includes('--if-stale') && buildIsFresh()) process.exit(0);
  try {
    const { ms, files } = await buildCli();
    if (!process.argv.includes('--quiet'))
      process.stderr.write(
        `built the fleetgate CLI into ${path.relative(process.cwd(), dist) || dist} (${files} files) in ${ms} ms\n`,
      );
  } catch (error) {
    // esbuild has printed a source's errors already, with their file and line; this says what failed.
    process.stderr.write(`cannot build ${dist}: ${error instanceof Error ? error.message : error}\n`);
    process.exitCode = 1;
  }
}
