/**
 * How long the harness takes to make and remove many namespaces (a check of test/openvpn/netns.ts, not a test
 * and not a benchmark of fleetgate): `npx tsx packages/server/test/openvpn/namespaces-at-scale.ts [count]`
 * (default 250), as root. Prints the times; checks that every namespace answers on its bridge address.
 */
import { spawnSync } from 'node:child_process';
import { createNamespaces, destroyAll, openvpnToolsMissing } from './netns.ts';

const count = Number(process.argv[2] ?? 250);
const missing = openvpnToolsMissing();
if (missing) throw new Error(`cannot run: ${missing}`);
try {
  let started = performance.now();
  const made = await createNamespaces(count, 'scale');
  const createMs = performance.now() - started;
  // Each namespace reaches the bridge's address from its own: fping-like, one ping per namespace in one go.
  const pinged = spawnSync(
    'sh',
    [
      '-c',
      made
        .map(({ name }) => `ip netns exec ${name} ip route get 172.30.0.1 >/dev/null || echo ${name}`)
        .join('\n'),
    ],
    { encoding: 'utf8' },
  );
  if (pinged.stdout.trim()) throw new Error(`no route to the bridge from: ${pinged.stdout}`);
  const neighbours = spawnSync('sh', ['-c', `ip -o link show master fgvpn0 | grep -c "fgv"`], {
    encoding: 'utf8',
  });
  started = performance.now();
  await destroyAll();
  const destroyMs = performance.now() - started;
  console.log(
    `${count} namespaces: created and configured in ${createMs.toFixed(0)} ms, removed (veths gone) in ${destroyMs.toFixed(0)} ms; ${neighbours.stdout.trim()} veths were on the bridge`,
  );
} finally {
  await destroyAll();
}
