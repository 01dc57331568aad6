/**
 * Listener exhaustion: connections that never send a byte, hundreds at once on every port of a real
 * `fleetgate serve` whose connection budget (FLEETGATE_MAX_CONNECTIONS) is small enough to reach. Neither the
 * SSH gateway nor the CONNECT proxy may take more than its share of the budget, so the HTTP API (which also
 * carries the devices' tunnels) keeps answering; a person still signs in over SSH (the silent connections
 * are pushed out for a newcomer from another source); and each port closes its silent connections within its
 * bound: the SSH sign-in time and the proxy's header timeout (the API's is Node's 60 s header timeout, too long
 * to wait for here: its silent connections are only counted).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '@fleetgate/agent/test/helpers.ts';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import { api, keygen } from '../ssh/openssh-tools.ts';

/** The process's connection budget in this test: the SSH gateway and the proxy may each hold a quarter. */
const BUDGET = 300;
const SSH_SIGN_IN_MS = 8000;
const PROXY_HEADER_TIMEOUT_MS = 8000;
/** Silent connections per port, from 40 loopback addresses (10 each, under every per-source cap). */
const FLOOD = 400;

interface Silent {
  /** Resolves when the server closed the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
}

/** A connection from `localAddress` that reads (to see the server close it) and never writes. */
function silentConnection(port: number, localAddress: string): Promise<Silent> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    let closed = false;
    const whenClosed = new Promise<void>((done) =>
      socket.once('close', () => {
        closed = true;
        done();
      }),
    );
    socket.on('error', () => {});
    socket.resume();
    // Settles once connected or refused: a refused one is a closed one.
    const settle = () => resolve({ closed: whenClosed, isClosed: () => closed });
    socket.once('connect', settle);
    socket.once('close', settle);
  });
}

const flood = (port: number, network: string) =>
  Promise.all(Array.from({ length: FLOOD }, (_, n) => silentConnection(port, `${network}.${1 + (n % 40)}`)));

const openOf = (connections: Silent[]) => connections.filter((c) => !c.isClosed()).length;

describe('silent connections on every port', () => {
  let server: ListeningServer;
  let adminKey: Buffer;

  beforeAll(async () => {
    server = await startListeningServer({
      flags: {
        maxConnections: BUDGET,
        sshAuthTimeoutMs: SSH_SIGN_IN_MS,
        proxyHeaderTimeoutMs: PROXY_HEADER_TIMEOUT_MS,
      },
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-silent-'));
    const keyFile = await keygen(dir, 'id_admin', 'admin');
    adminKey = fs.readFileSync(keyFile);
    await api(server, 'POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${keyFile}.pub`, 'utf8') });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('keeps the API and SSH sign-in working, holds each port to its share, and closes them in time', async () => {
    const start = performance.now();
    const [ssh, proxy, api] = await Promise.all([
      flood(server.server.sshPort, '127.0.2'),
      flood(server.server.proxyPort, '127.0.3'),
      // 100 on the API's port: within the budget, the API holds them until its header timeout.
      Promise.all(
        Array.from({ length: 100 }, (_, n) => silentConnection(apiPort(), `127.0.4.${1 + (n % 10)}`)),
      ),
    ]);
    // Neither the gateway nor the proxy holds more than its quarter of the budget (once the server has had
    // the time to turn away the rest)…
    await waitFor(
      () => openOf(ssh) <= BUDGET / 4 && openOf(proxy) <= BUDGET / 4,
      5_000,
      'the SSH and proxy ports to turn away connections beyond their share',
    );
    expect(openOf(ssh)).toBeGreaterThan(0);
    expect(openOf(ssh)).toBeLessThanOrEqual(BUDGET / 4);
    expect(openOf(proxy)).toBeGreaterThan(0);
    expect(openOf(proxy)).toBeLessThanOrEqual(BUDGET / 4);
    expect(openOf(api)).toBe(100);

    // …so the API answers and signs people in…
    expect((await requestJson(`${server.url}/healthz`)).status).toBe(200);
    const login = await requestJson(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    expect(login.status).toBe(200);
    // …and a person signs in over SSH from an address of their own.
    expect(await signsIn(server.server.sshPort, adminKey)).toBe(true);

    // Every silent connection on the SSH and proxy ports is closed within its bound.
    const bound = Math.max(SSH_SIGN_IN_MS, PROXY_HEADER_TIMEOUT_MS) + 3_000;
    await new Promise((resolve) => setTimeout(resolve, bound - (performance.now() - start)));
    expect(openOf(ssh)).toBe(0);
    expect(openOf(proxy)).toBe(0);
    // Then the ports take new connections again.
    expect(await signsIn(server.server.sshPort, adminKey)).toBe(true);
  }, 60_000);

  function apiPort(): number {
    return Number(new URL(server.url).port);
  }
});

describe('a server stopping while silent connections are open', () => {
  it('stops without waiting for them, on every port', async () => {
    const server = await startListeningServer();
    const ports = [Number(new URL(server.url).port), server.server.sshPort, server.server.proxyPort];
    const silent = await Promise.all(ports.map((port) => silentConnection(port, '127.0.5.1')));
    // Node stops its header timeout when the API closes: without cutting them, the stop never ended.
    const stopped = server.close().then(() => 'stopped');
    const stuck = new Promise((resolve) =>
      setTimeout(() => resolve('still stopping after 20 s'), 20_000).unref(),
    );
    expect(await Promise.race([stopped, stuck])).toBe('stopped');
    await Promise.all(silent.map(({ closed }) => closed));
  }, 30_000);
});

/** Whether `admin` signs in to the gateway with `privateKey` from 127.0.0.1, within 10 s. */
function signsIn(port: number, privateKey: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const client = new ssh2.Client();
    const settle = (signedIn: boolean) => {
      client.end();
      resolve(signedIn);
    };
    client.on('ready', () => settle(true));
    client.on('error', () => settle(false));
    client.on('close', () => settle(false));
    client.connect({ host: '127.0.0.1', port, username: 'admin', privateKey, readyTimeout: 10_000 });
  });
}
