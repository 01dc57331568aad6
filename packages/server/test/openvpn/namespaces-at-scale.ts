/**
 * How long the harness takes to make and remove many namespaces (a check of test/openvpn/netns.ts, not a test
 * and not a benchmark of fleetgate): `npx tsx packages/server/test/openvpn/namespaces-at-scale.ts [count]`
 * (default 250), as root. Prints the times, after checking that every namespace answers at its bridge address.
 */
import fs from 'node:fs';
import net from 'node:net';
import { createNamespaces, destroyAll, openvpnToolsMissing, workerNetwork } from './netns.ts';

const count = Number(process.argv[2] ?? 250);
const missing = openvpnToolsMissing();
if (missing) throw new Error(`cannot run: ${missing}`);

/**
 * Whether `address` answers from the root namespace: a TCP connection to a port no one listens on is refused by
 * the namespace's kernel (a reset), with no process needed inside; silence means it cannot be reached.
 */
function answers(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port: 9, timeout: 3000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

try {
  const { slot } = await workerNetwork();
  let started = performance.now();
  const made = await createNamespaces(count, 'scale');
  const createMs = performance.now() - started;
  const results = await Promise.all(made.map(({ address }) => answers(address)));
  const silent = made.filter((_, i) => !results[i]);
  if (silent.length)
    throw new Error(`${silent.length} namespaces do not answer: ${silent.map((n) => n.name)}`);
  const veths = fs.readdirSync('/sys/class/net').filter((link) => link.startsWith(`fgv${slot}-`)).length;
  started = performance.now();
  await destroyAll();
  const destroyMs = performance.now() - started;
  console.log(
    `${count} namespaces (${veths} veths on the bridge, each answering at its address): created and configured in ` +
      `${createMs.toFixed(0)} ms, removed (veths gone) in ${destroyMs.toFixed(0)} ms`,
  );
} finally {
  await destroyAll();
}
