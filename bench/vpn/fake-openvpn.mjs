#!/usr/bin/env node
/**
 * bench/vpn's stand-in for an OpenVPN server, started by fleetgate in its place (FLEETGATE_VPN_OPENVPN): it
 * connects to the management socket fleetgate gives it, as `openvpn --management <socket> unix
 * --management-client --management-client-auth` does, and writes the same `>CLIENT:CONNECT` blocks OpenVPN writes
 * when clients ask in, as fast as the bench asks (no TLS handshakes: those are OpenVPN's cost, the same whatever
 * decides). It opens no tun device.
 *
 * The bench drives it through a control socket, `$FAKE_OPENVPN_DIR/fake-<port>.sock`: one JSON line
 * `{mode, credentials: [[uuid, key], …], concurrency, url}` in, one JSON line of results out. `mode`:
 * - `management`: each credential asks in through the management interface; the latency runs from the block
 *   written to fleetgate's `client-auth`/`client-deny` read;
 * - `script`: each credential is checked the way openBalena's VPN does (an auth script per connection, calling an
 *   HTTP API with the credential): a `curl` process per credential calling fleetgate's device-key check
 *   (`GET <url>/api/v1/device/self`, Basic uuid:key); the latency runs from the spawn to its exit.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const args = process.argv.slice(2);
if (args.includes('--version')) {
  console.log('OpenVPN 2.6 stand-in (fleetgate bench/vpn)');
  process.exit(0);
}
const socketPath = args[args.indexOf('--management') + 1];
const port = args[args.indexOf('--port') + 1];

const management = net.connect(socketPath);
management.setEncoding('utf8');
// What fleetgate waits for before it counts the instance as up (OpenVPN prints it once it listens).
management.once('connect', () => console.log('fleetgate bench stand-in: Initialization Sequence Completed'));
let nextCid = 1;
/** cid → resolve(answer) of the requests in flight. */
const waiting = new Map();
let buffer = '';
management.on('data', (chunk) => {
  buffer += chunk;
  let end = buffer.indexOf('\n');
  while (end >= 0) {
    const line = buffer.slice(0, end);
    buffer = buffer.slice(end + 1);
    end = buffer.indexOf('\n');
    const command = /^client-(auth-nt|auth|deny|kill) (\d+)/.exec(line);
    if (!command) continue;
    management.write(`SUCCESS: client-${command[1]} command succeeded\n`);
    const cid = Number(command[2]);
    const answer = waiting.get(cid);
    if (!answer) continue;
    waiting.delete(cid);
    const allowed = command[1] !== 'deny';
    if (allowed) {
      management.write(
        `>CLIENT:ESTABLISHED,${cid}\n>CLIENT:ENV,ifconfig_pool_remote_ip=10.240.${(cid >> 8) & 15}.${cid & 255}\n>CLIENT:ENV,END\n`,
      );
    }
    answer(allowed);
  }
});
management.on('close', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));

function askManagement([uuid, key]) {
  const cid = nextCid++;
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    waiting.set(cid, (allowed) => resolve({ allowed, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
    management.write(
      `>CLIENT:CONNECT,${cid},0\n>CLIENT:ENV,untrusted_ip=127.0.0.1\n>CLIENT:ENV,untrusted_port=${40000 + (cid % 20000)}\n` +
        `>CLIENT:ENV,username=${uuid}\n>CLIENT:ENV,password=${key}\n>CLIENT:ENV,END\n`,
    );
  });
}

function askScript([uuid, key], url) {
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    const curl = spawn(
      'curl',
      ['-sf', '-o', '/dev/null', '-u', `${uuid}:${key}`, `${url}/api/v1/device/self`],
      {
        stdio: 'ignore',
      },
    );
    curl.on('exit', (code) =>
      resolve({ allowed: code === 0, ms: Number(process.hrtime.bigint() - started) / 1e6 }),
    );
  });
}

async function run({ mode, credentials, concurrency, url }) {
  const latencies = [];
  let allowed = 0;
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (next < credentials.length) {
      const credential = credentials[next++];
      const answer = mode === 'script' ? await askScript(credential, url) : await askManagement(credential);
      latencies.push(answer.ms);
      if (answer.allowed) allowed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return {
    latencies,
    allowed,
    refused: credentials.length - allowed,
    elapsedMs: Number(process.hrtime.bigint() - started) / 1e6,
  };
}

const control = net.createServer((socket) => {
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', async (chunk) => {
    text += chunk;
    if (!text.endsWith('\n')) return;
    const result = await run(JSON.parse(text));
    text = '';
    socket.write(`${JSON.stringify(result)}\n`);
  });
});
const controlPath = path.join(process.env.FAKE_OPENVPN_DIR, `fake-${port}.sock`);
fs.rmSync(controlPath, { force: true });
control.listen(controlPath);
