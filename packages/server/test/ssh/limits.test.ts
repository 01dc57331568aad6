/**
 * The SSH gateway under bad input (issue 5, "Bad input"): a real fleetgate server, a real agent (in-process,
 * over real sockets) in front of a TCP port on "the device", and ssh2 clients that open too many channels,
 * never sign in, or guess passwords. Sources other than 127.0.0.1 are other loopback addresses (127.0.0.2…),
 * so that one source's flood and everybody else can be told apart.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs, waitFor } from '@fleetgate/agent/test/helpers.ts';
import ssh2, { type ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FORWARDING_WINDOW, WIDE_WINDOWS_PER_USER } from '../../src/features/ssh-gateway/window.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import { api as callApi, clientOptions, keygen, run } from './openssh-tools.ts';

/** The sign-in timeout of this test's server (FLEETGATE_SSH_AUTH_TIMEOUT_MS; 30 s by default). */
const AUTH_TIMEOUT_MS = 3000;
/** Failed sign-ins allowed per source and per login in 15 minutes (FLEETGATE_LOGIN_ATTEMPTS, the default). */
const LOGIN_ATTEMPTS = 10;

type Client = InstanceType<typeof ssh2.Client>;

interface Connected {
  client: Client;
  /** Resolves when the connection closed, with how long after connecting. */
  closed: Promise<number>;
}

interface Attempt {
  signedIn: boolean;
  error: (Error & { level?: string }) | undefined;
}

describe('SSH gateway limits', () => {
  let server: ListeningServer;
  let dir: string;
  let sshPort: number;
  let agent: Agent;
  let uuid: string;
  let adminKey: Buffer;
  let adminKeyFile: string;
  let sinkPort: number;
  const sink = net.createServer((socket) => {
    // "The device's port": holds each connection open and echoes, so channels stay open until closed.
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  const clients = new Set<Client>();

  const api = (method: string, url: string, body?: unknown) => callApi(server, method, url, body);

  /** A socket to the gateway from `localAddress`, connected. */
  const socketFrom = (localAddress: string) =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: sshPort, localAddress }, () => resolve(socket));
      socket.once('error', reject);
    });

  /** Signs in (or tries to) with an ssh2 client; resolves when it is in, refused or cut. */
  const signIn = async (
    username: string,
    credentials: { privateKey: Buffer } | { password: string },
    from = '127.0.0.1',
  ): Promise<Attempt & { client: Client }> => {
    const client = new ssh2.Client();
    clients.add(client);
    const sock = await socketFrom(from);
    return new Promise((resolve) => {
      let settled = false;
      const settle = (attempt: Attempt) => {
        if (settled) return;
        settled = true;
        resolve({ ...attempt, client });
      };
      client.on('ready', () => settle({ signedIn: true, error: undefined }));
      client.on('error', (error: Error) => settle({ signedIn: false, error }));
      client.on('close', () => settle({ signedIn: false, error: undefined }));
      client.connect({
        host: '127.0.0.1',
        port: sshPort,
        username,
        sock,
        readyTimeout: 30_000,
        ...credentials,
      });
    });
  };

  /** Connects and never signs in: the handler never answers which method to try next. */
  const idle = async (from: string): Promise<Connected> => {
    const client = new ssh2.Client();
    clients.add(client);
    const sock = await socketFrom(from);
    const start = performance.now();
    const closed = new Promise<number>((resolve) =>
      client.on('close', () => resolve(performance.now() - start)),
    );
    client.on('error', () => {});
    client.connect({
      host: '127.0.0.1',
      port: sshPort,
      username: 'admin',
      sock,
      readyTimeout: 60_000,
      authHandler: () => {},
    });
    return { client, closed };
  };

  const forward = (client: Client) =>
    new Promise<{ channel?: ClientChannel; error?: Error & { reason?: number } }>((resolve) =>
      client.forwardOut('127.0.0.1', 0, uuid, sinkPort, (error, channel) =>
        resolve(error ? { error } : { channel }),
      ),
    );

  const end = async (client: Client) => {
    const closed = new Promise((resolve) => client.once('close', resolve));
    client.end();
    await closed;
    clients.delete(client);
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-ssh-limits-'));
    server = await startListeningServer({
      flags: { presenceFlushMs: 50, sshAuthTimeoutMs: AUTH_TIMEOUT_MS, loginAttempts: LOGIN_ATTEMPTS },
    });
    sshPort = server.server.sshPort;

    adminKeyFile = await keygen(dir, 'id_admin', 'admin');
    adminKey = fs.readFileSync(adminKeyFile);
    await api('POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${adminKeyFile}.pub`, 'utf8') });
    await api('POST', '/api/v1/users', { email: 'victim@example.test', password: 'victim password 1' });

    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    sinkPort = (sink.address() as net.AddressInfo).port;
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'limits-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'limits' });
    ({ agent, uuid } = await enrollAgent(
      server.url,
      key,
      { agentVersion: '0.1.0-limits', allowedPorts: [sinkPort] },
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    ));
    await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [sinkPort] });
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) client.end();
    await agent?.stop();
    await new Promise((resolve) => sink.close(resolve));
    await server?.close();
    removeTemporaryDirs();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses channels beyond 16 on one connection with a reason, and the connection survives', async () => {
    const { client, signedIn } = await signIn('admin', { privateKey: adminKey });
    expect(signedIn).toBe(true);
    const opened: ClientChannel[] = [];
    for (let i = 0; i < 16; i++) {
      const { channel, error } = await forward(client);
      expect(error).toBeUndefined();
      opened.push(channel!);
    }
    const refused = await Promise.all([forward(client), forward(client), forward(client)]);
    for (const { error } of refused) {
      expect(error?.message).toBe(
        '(SSH) Channel open failure: too many channels on this connection (at most 16)',
      );
      expect(error?.reason).toBe(4); // SSH_OPEN_RESOURCE_SHORTAGE
    }
    // The open channels still carry data, and a channel closed makes room for a new one.
    const echoed = new Promise<string>((resolve) =>
      opened[0]!.once('data', (data: Buffer) => resolve(String(data))),
    );
    opened[0]!.write('still here');
    expect(await echoed).toBe('still here');
    opened[1]!.close();
    const again = await waitFor(
      async () => {
        const attempt = await forward(client);
        if (attempt.channel) return attempt.channel;
        return undefined;
      },
      5_000,
      'a channel once another closed',
    );
    expect(again).toBeDefined();
    await end(client);
  });

  it(`lets a client send ${FORWARDING_WINDOW / 2 ** 20} MiB on ${WIDE_WINDOWS_PER_USER} forwarding channels at once before it waits (ssh2 alone: 2 MiB)`, async () => {
    const { client, signedIn } = await signIn('admin', { privateKey: adminKey });
    expect(signedIn).toBe(true);
    const channels: ClientChannel[] = [];
    for (let i = 0; i <= WIDE_WINDOWS_PER_USER; i++) channels.push((await forward(client)).channel!);
    // The client's own count of what it may still send on a channel (ssh2 client internals).
    const mayStillSend = (channel: ClientChannel) =>
      (channel as unknown as { outgoing: { window: number } }).outgoing.window;
    const wide = channels.slice(0, WIDE_WINDOWS_PER_USER);
    await waitFor(
      async () => (wide.every((c) => mayStillSend(c) === FORWARDING_WINDOW) ? true : undefined),
      5_000,
      `windows of ${FORWARDING_WINDOW} bytes (now ${wide.map(mayStillSend).join(', ')})`,
    );
    /** Sends `bytes` through the channel to the device's echo and counts what comes back. */
    const roundTrip = (channel: ClientChannel, bytes: number) =>
      new Promise<number>((resolve) => {
        let back = 0;
        channel.on('data', (data: Buffer) => {
          back += data.length;
          if (back === bytes) resolve(back);
        });
        channel.write(Buffer.alloc(bytes, 7));
      });
    // One more than the person's wide windows keeps ssh2's 2 MiB, and still carries data.
    // (A grant sent with its opening would have arrived before the echo.)
    const extra = channels[WIDE_WINDOWS_PER_USER]!;
    expect(await roundTrip(extra, 1000)).toBe(1000);
    expect(mayStillSend(extra)).toBe(2 * 1024 * 1024 - 1000);
    // More than one window crosses to the device and back, the grants following the reads.
    const bytes = FORWARDING_WINDOW + 3 * 1024 * 1024;
    expect(await roundTrip(wide[0]!, bytes)).toBe(bytes);
    await end(client);
  });

  it('refuses channels beyond 64 for one person across connections', async () => {
    const connections: Client[] = [];
    for (let c = 0; c < 4; c++) {
      const { client, signedIn } = await signIn('admin', { privateKey: adminKey });
      expect(signedIn).toBe(true);
      connections.push(client);
      for (let i = 0; i < 16; i++) expect((await forward(client)).error).toBeUndefined();
    }
    const fifth = await signIn('admin', { privateKey: adminKey });
    expect(fifth.signedIn).toBe(true);
    const { error } = await forward(fifth.client);
    expect(error?.message).toBe(
      '(SSH) Channel open failure: too many open channels for your account (at most 64)',
    );
    // Once one connection ends, its channels are given back.
    await end(connections.pop()!);
    await waitFor(async () => (await forward(fifth.client)).channel, 5_000, 'a channel after the release');
    for (const client of [...connections, fifth.client]) await end(client);
  }, 30_000);

  it('cuts a connection that does not sign in within the sign-in timeout', async () => {
    const { closed } = await idle('127.0.0.1');
    const after = await closed;
    expect(after).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS - 250);
    expect(after).toBeLessThan(AUTH_TIMEOUT_MS + 3_000);
  });

  it('closes hundreds of connections that never send a byte within the sign-in time, while ssh and the API work', async () => {
    // 300 silent connections from 30 addresses (10 each, under the 16 per source), more than the 256 that may
    // wait to sign in at once: the gateway counts them from accept, not from their first line.
    const start = performance.now();
    const silent = await Promise.all(
      Array.from({ length: 300 }, async (_, n) => {
        const socket = await socketFrom(`127.0.1.${1 + (n % 30)}`);
        socket.on('error', () => {});
        // Reads (it never writes): a socket nobody reads would never see the server close it.
        socket.resume();
        // Wrapped: an async function answering a promise would wait for it.
        return {
          closed: new Promise<void>((resolve) => socket.once('close', () => resolve())),
        };
      }),
    );
    // While they are open, a person signs in with OpenSSH and runs a command on the device…
    const login = await run('ssh', [
      ...clientOptions(adminKeyFile),
      '-p',
      String(sshPort),
      `admin+${uuid}@127.0.0.1`,
      'echo signed in',
    ]);
    expect(login.stderr).toBe('');
    expect(login.stdout.trim()).toBe('signed in');
    // …and the HTTP API answers.
    expect((await requestJson(`${server.url}/healthz`)).status).toBe(200);
    // Every silent connection is closed by the sign-in time (or pushed out sooner for a newcomer).
    let closed = 0;
    for (const socket of silent) void socket.closed.then(() => (closed += 1));
    await new Promise((resolve) =>
      setTimeout(resolve, AUTH_TIMEOUT_MS + 3_000 - (performance.now() - start)),
    );
    expect(closed).toBe(silent.length);
  }, 30_000);

  it('caps connections that have not signed in from one source at 16; other sources still sign in', async () => {
    const waiting = await Promise.all(Array.from({ length: 16 }, () => idle('127.0.0.3')));
    // Give the server time to count all 16 before the 17th arrives.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const seventeenth = await idle('127.0.0.3');
    // Cut at once, not by the sign-in timeout (with margin for a loaded machine).
    expect(await seventeenth.closed).toBeLessThan(AUTH_TIMEOUT_MS - 1000);
    const other = await signIn('admin', { privateKey: adminKey }, '127.0.0.1');
    expect(other.signedIn).toBe(true);
    await end(other.client);
    // The 16 are cut by the sign-in timeout like any other.
    for (const { closed } of waiting) expect(await closed).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS - 250);
  });

  it(`stops a source after ${LOGIN_ATTEMPTS} failed sign-ins as a person, while that person signs in from elsewhere and /healthz answers`, async () => {
    const flooder = '127.0.0.2';
    const wrong = (n: number) => signIn('admin', { password: `fg_wrong-password-${n}` }, flooder);
    // Each wrong password counts once…
    for (let n = 1; n <= LOGIN_ATTEMPTS; n++) {
      const attempt = await wrong(n);
      expect(attempt.signedIn).toBe(false);
      expect(attempt.error?.message).toBe('All configured authentication methods failed');
    }
    // …and after the 10th the source may not sign in as that person, not even with the right key…
    const locked = await signIn('admin', { privateKey: adminKey }, flooder);
    expect(locked.signedIn).toBe(false);
    // …while the person, from their own address, signs in: guesses by others never lock them out.
    const owner = await signIn('admin', { privateKey: adminKey }, '127.0.0.1');
    expect(owner.signedIn).toBe(true);
    await end(owner.client);

    // A flood in parallel: every attempt refused, while HTTP and other people's sign-ins carry on.
    let healthy = 0;
    let slowestMs = 0;
    let flooding = true;
    const probes = (async () => {
      while (flooding) {
        const start = performance.now();
        const answer = await requestJson(`${server.url}/healthz`);
        slowestMs = Math.max(slowestMs, performance.now() - start);
        if (answer.status === 200) healthy++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const flood = Promise.all(Array.from({ length: 60 }, (_, n) => wrong(100 + n)));
    const others = await Promise.all(
      Array.from({ length: 3 }, () => signIn('admin', { privateKey: adminKey }, '127.0.0.1')),
    );
    const floodResults = await flood;
    flooding = false;
    await probes;
    expect(floodResults.every((attempt) => !attempt.signedIn)).toBe(true);
    for (const other of others) {
      expect(other.signedIn).toBe(true);
      await end(other.client);
    }
    expect(healthy).toBeGreaterThan(0);
    // Responsive: no /healthz waits for the flood to end (generous, for a loaded CI machine).
    expect(slowestMs).toBeLessThan(5_000);
  }, 60_000);
});
