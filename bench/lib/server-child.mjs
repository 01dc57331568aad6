/**
 * The server process of bench/lib/server-process.ts: fleetgate's server as `fleetgate serve` runs it, from the
 * CLI's build (packages/cli/dist/server.mjs, no TypeScript loader), or from the TypeScript sources through tsx's
 * loader with FLEETGATE_FROM_SOURCE=1 (as bin/fleetgate.js does).
 *
 * `node server-child.mjs <flags as JSON>`: runs fleetgate with those flags and no environment (a developer's
 * FLEETGATE_* variables cannot change the run), sends its URL, answers `'cpu'` with its CPU time and `'memory'`
 * with its memory (after a full garbage collection), and closes when the parent disconnects. A normal exit lets
 * `--cpu-prof` write its profile.
 */
async function loadServer() {
  if (process.env.FLEETGATE_FROM_SOURCE === '1') {
    const { register } = await import('tsx/esm/api');
    register();
    return import('@fleetgate/server');
  }
  return import('@fleetgate/cli/dist/server.mjs');
}

const { startServer } = await loadServer();
const server = await startServer({ flags: JSON.parse(process.argv[2]), env: {}, print: () => {} });
let closing = false;
const close = async () => {
  if (closing) return;
  closing = true;
  await server.close();
  process.exit(0);
};
process.on('disconnect', close);
process.on('SIGINT', close);
process.on('message', (message) => {
  if (message === 'cpu') {
    const { user, system } = process.cpuUsage();
    process.send({ cpuMicros: user + system });
  } else if (message === 'memory') {
    globalThis.gc?.();
    const { rss, heapUsed, external } = process.memoryUsage();
    process.send({ memory: { rssBytes: rss, heapUsedBytes: heapUsed, externalBytes: external } });
  }
});
process.send({ url: server.url, sshPort: server.sshPort });
