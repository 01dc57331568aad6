/**
 * The HTTP CONNECT proxy with real `curl`, against the real server (`startServer`) and the real agent library
 * in-process with an HTTP server on the "device" (127.0.0.1, a random port on both allow-lists): absolute-form
 * and CONNECT requests reach it by uuid, uuid prefix and name; wrong credentials, other organizations (their
 * devices' names too), ambiguous names, offline devices, refused and forbidden ports, malformed, oversized and
 * slow requests get their own answers; and every CONNECT is a session that `GET /api/v1/sessions` shows and an
 * administrator can terminate.
 */
import { execFile, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs, waitFor } from '@fleetgate/agent/test/helpers.ts';
import { memoryIo, runCli } from '@fleetgate/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';

const hasCurl = (() => {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
// CI installs curl (.ci/run): there, a missing curl is a failure, never a skip.
if (!hasCurl && process.env.CI) throw new Error('the CONNECT proxy tests need curl (Debian package: curl)');
if (!hasCurl) console.warn('SKIPPED: CONNECT proxy tests need curl (Debian package: curl)');

/** What `curl` printed and the status it saw (`-w`), never throwing on curl's own failure exit codes. */
function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (error, stdout, stderr) => {
      const code = error ? Number((error as { code?: number }).code ?? 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Sends `text` on a raw connection to the proxy and answers everything it sent back until it closed. */
async function rawExchange(port: number, text: string | Buffer, localAddress = '127.0.0.1'): Promise<string> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(text);
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

describe.skipIf(!hasCurl)('HTTP CONNECT proxy', () => {
  let server: ListeningServer;
  let proxyPort: number;
  let agent: Agent;
  let uuid: string;
  let device: http.Server;
  let devicePort: number;
  /** A port on the allow-lists where nothing listens on the device. */
  let closedPort: number;
  let offlineUuid: string;
  const keys = { admin: '', outsider: '', viewer: '' };
  const logins = { outsider: 'outsider@example.test', viewer: 'proxy-viewer@example.test' };
  const asAdmin = async (method: string, url: string, body?: unknown, token = server.adminToken) =>
    requestJson(`${server.url}${url}`, { method, token, ...(body === undefined ? {} : { body }) });
  const must = async (method: string, url: string, body?: unknown, token?: string) => {
    const answer = await asAdmin(method, url, body, token);
    if (answer.status >= 300) throw new Error(`${method} ${url}: ${answer.status} ${answer.text}`);
    return answer.body;
  };
  const proxyAs = (login: string, key: string) => [
    '-x',
    `http://127.0.0.1:${proxyPort}`,
    '-U',
    `${login}:${key}`,
  ];
  const deviceUrl = (port = devicePort, host = `${uuid}.devices`) => `http://${host}:${port}/hello`;

  beforeAll(async () => {
    server = await startListeningServer({
      flags: {
        presenceFlushMs: 50,
        tunnelPingIntervalMs: 1000,
        tunnelPingTimeoutMs: 1000,
        proxyHeaderTimeoutMs: 1000,
        proxyMaxConnectionsPerSource: 20,
      },
    });
    proxyPort = server.server.proxyPort;
    device = http.createServer((request, response) => {
      response.setHeader('content-type', 'text/plain');
      response.end(`hello from the device: ${request.method} ${request.url}\n`);
    });
    device.listen(0, '127.0.0.1');
    await once(device, 'listening');
    devicePort = (device.address() as net.AddressInfo).port;
    const spare = net.createServer().listen(0, '127.0.0.1');
    await once(spare, 'listening');
    closedPort = (spare.address() as net.AddressInfo).port;
    await new Promise((resolve) => spare.close(resolve));

    const fleet = await must('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'proxy',
      defaultDeviceType: 'generic-amd64',
    });
    await must('PUT', `/api/v1/fleets/${fleet.id}/allowed-ports`, { ports: [devicePort, closedPort, 22] });
    const { key } = await must('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'proxy' });
    ({ agent, uuid } = await enrollAgent(
      server.url,
      key,
      { agentVersion: '0.1.0-proxy-test', allowedPorts: [devicePort, closedPort] },
      async (id) => (await asAdmin('GET', `/api/v1/devices/${id}`)).body.status === 'online',
    ));
    offlineUuid = (await must('POST', '/api/v1/devices', { fleetId: fleet.id, name: 'offline-one' })).uuid;

    keys.admin = (await must('POST', '/api/v1/api-keys', { name: 'proxy' })).key;
    // Another organization's owner, and a viewer of ours.
    const beta = await must('POST', '/api/v1/orgs', { name: 'Beta proxy' });
    for (const [who, orgId, role] of [
      ['outsider', beta.id, 'owner'],
      ['viewer', 1, 'viewer'],
    ] as const) {
      const member = await must('POST', `/api/v1/orgs/${orgId}/members`, { email: logins[who], role });
      const login = await requestJson(`${server.url}/api/v1/auth/login`, {
        method: 'POST',
        body: { email: logins[who], password: member.password },
      });
      keys[who] = (await must('POST', '/api/v1/api-keys', { name: 'proxy' }, login.body.token)).key;
    }
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    device?.close();
    await server?.close();
    removeTemporaryDirs();
  });

  it('forwards absolute-form requests to the device: curl -x reaches its web page', async () => {
    const answer = await curl([...proxyAs(ADMIN_EMAIL, keys.admin), '-w', '\n%{http_code}', deviceUrl()]);
    expect(answer.stderr).toBe('');
    expect(answer.stdout).toBe('hello from the device: GET /hello\n\n200');
    // The credentials in the proxy URL, as people write them (the @ of the e-mail escaped).
    const inUrl = await curl([
      '-x',
      `http://${encodeURIComponent(ADMIN_EMAIL)}:${keys.admin}@127.0.0.1:${proxyPort}`,
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
      deviceUrl(devicePort, uuid),
    ]);
    expect(inUrl.stdout).toBe('200');
    // Each request was a session that ended cleanly (the device closed after its answer).
    const ended = await waitFor(
      async () => {
        const page = (await asAdmin('GET', `/api/v1/sessions?device=${uuid}&live=false`)).body;
        return page.total === 2 ? page.items : undefined;
      },
      5000,
      'two ended sessions',
    );
    for (const session of ended) expect(session).toMatchObject({ surface: 'connect', outcome: 'closed' });
  });

  it('tunnels with CONNECT: curl -p reaches the device through a raw stream', async () => {
    const answer = await curl([
      '-p',
      ...proxyAs(ADMIN_EMAIL, keys.admin),
      '-w',
      '\n%{http_connect} %{http_code}',
      deviceUrl(),
    ]);
    expect(answer.stdout).toBe('hello from the device: GET /hello\n\n200 200');
  });

  it('answers 407 to wrong keys, missing credentials and another organization’s people, alike', async () => {
    const status = async (args: string[], url = deviceUrl()) =>
      (await curl([...args, '-o', '/dev/null', '-w', '%{http_code}', url])).stdout;
    expect(await status(proxyAs(ADMIN_EMAIL, 'fgk_not-the-key'))).toBe('407');
    expect(await status(proxyAs(logins.viewer, keys.admin))).toBe('407');
    expect(await status(['-x', `http://127.0.0.1:${proxyPort}`])).toBe('407');
    expect(await status(proxyAs(logins.outsider, keys.outsider))).toBe('407');
    // An unknown device answers as another organization's does.
    expect(
      await status(
        proxyAs(logins.outsider, keys.outsider),
        deviceUrl(devicePort, `${'0'.repeat(32)}.devices`),
      ),
    ).toBe('407');
    const connect = await curl([
      '-p',
      ...proxyAs(logins.outsider, keys.outsider),
      '-w',
      '%{http_connect}',
      deviceUrl(),
    ]);
    expect(connect.stdout).toBe('407');
    const raw = await rawExchange(
      proxyPort,
      `CONNECT ${uuid}.devices:${devicePort} HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 407 /);
    expect(raw).toContain('Proxy-Authenticate: Basic realm="fleetgate"');
  });

  it('answers 503 for an offline device, 502 for a port the device refuses, 403 outside the allow-list', async () => {
    const status = async (url: string, connect = false) =>
      (
        await curl([
          ...(connect ? ['-p'] : []),
          ...proxyAs(ADMIN_EMAIL, keys.admin),
          '-o',
          '/dev/null',
          '-w',
          connect ? '%{http_connect}' : '%{http_code}',
          url,
        ])
      ).stdout;
    expect(await status(deviceUrl(devicePort, `${offlineUuid}.devices`))).toBe('503');
    expect(await status(deviceUrl(devicePort, `${offlineUuid}.devices`), true)).toBe('503');
    expect(await status(deviceUrl(closedPort))).toBe('502');
    expect(await status(deviceUrl(closedPort), true)).toBe('502');
    expect(await status(deviceUrl(8))).toBe('403');
    expect(await status(deviceUrl(8), true)).toBe('403');
    // A viewer sees the device but may not connect to it.
    const viewer = await curl([...proxyAs(logins.viewer, keys.viewer), '-w', '\n%{http_code}', deviceUrl()]);
    expect(viewer.stdout).toMatch(/viewer.*\n403$/s);
  });

  it('answers 400 to malformed requests and 431 to huge headers', async () => {
    for (const line of [
      'CONNECT nonsense HTTP/1.1',
      `CONNECT ${uuid}.devices HTTP/1.1`,
      `CONNECT ${uuid}.devices:99999 HTTP/1.1`,
      'CONNECT example.com:443 HTTP/1.1',
      'GET /not-a-proxy-request HTTP/1.1',
      'GARBAGE',
      '\u0000\u0001\u0002 HTTP/1.1',
    ]) {
      const answer = await rawExchange(proxyPort, `${line}\r\nHost: x\r\n\r\n`);
      expect(answer, line).toMatch(/^HTTP\/1\.1 400 /);
    }
    const huge = await rawExchange(
      proxyPort,
      `CONNECT ${uuid}.devices:${devicePort} HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('cuts a slowloris client after the header timeout while others get through', async () => {
    const slow = net.connect({ port: proxyPort, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    slow.on('data', (chunk: Buffer) => chunks.push(chunk));
    slow.on('error', () => {});
    await once(slow, 'connect');
    const started = performance.now();
    slow.write(`CONNECT ${uuid}.devices:${devicePort} HTTP/1.1\r\n`);
    const drip = setInterval(() => {
      if (!slow.destroyed) slow.write('X-Slow: a\r\n');
    }, 100);
    try {
      // Meanwhile, somebody else is served at once.
      const other = await curl([
        ...proxyAs(ADMIN_EMAIL, keys.admin),
        '-w',
        '%{http_code}',
        '-o',
        '/dev/null',
        deviceUrl(),
      ]);
      expect(other.stdout).toBe('200');
      await once(slow, 'close');
    } finally {
      clearInterval(drip);
    }
    const elapsed = performance.now() - started;
    expect(Buffer.concat(chunks).toString()).toMatch(/^HTTP\/1\.1 408 /);
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(5000);
  });

  it('stops an address guessing at a login, without locking the person out from their own address', async () => {
    const attempt = (localAddress: string, login: string, key: string) =>
      rawExchange(
        proxyPort,
        `CONNECT ${uuid}.devices:${devicePort} HTTP/1.1\r\nProxy-Authorization: Basic ${Buffer.from(
          `${login}:${key}`,
        ).toString('base64')}\r\n\r\n`,
        localAddress,
      );
    // The server's login allowance (FLEETGATE_LOGIN_ATTEMPTS, default 10) for guesses at one login from 127.0.0.2.
    for (let i = 0; i < 10; i++) {
      expect(await attempt('127.0.0.2', ADMIN_EMAIL, `fgk_wrong${i}`)).toMatch(/^HTTP\/1\.1 407 /);
    }
    // The guessing address is refused even the right key (it learns nothing)…
    const limited = await attempt('127.0.0.2', ADMIN_EMAIL, keys.admin);
    expect(limited).toMatch(/^HTTP\/1\.1 429 /);
    expect(limited).toMatch(/Retry-After: \d+/);
    // …while the person, from their own address, is served.
    const other = await curl([
      ...proxyAs(ADMIN_EMAIL, keys.admin),
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
      deviceUrl(),
    ]);
    expect(other.stdout).toBe('200');
  });

  it('limits connections per source address', async () => {
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const socket = net.connect({ port: proxyPort, host: '127.0.0.1', localAddress: '127.0.0.3' });
        socket.on('error', () => {});
        await once(socket, 'connect');
        held.push(socket);
      }
      // Accepted connections are counted as the server sees them: give it a moment.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const refused = await rawExchange(proxyPort, 'GET http://x/ HTTP/1.1\r\n\r\n', '127.0.0.3');
      expect(refused).toMatch(/^HTTP\/1\.1 429 /);
      const other = await curl([
        ...proxyAs(ADMIN_EMAIL, keys.admin),
        '-w',
        '%{http_code}',
        '-o',
        '/dev/null',
        deviceUrl(),
      ]);
      expect(other.stdout).toBe('200');
    } finally {
      for (const socket of held) socket.destroy();
    }
  });

  describe('devices by name and uuid prefix', () => {
    const port = () => devicePort;
    /** The proxy's whole answer to a request (CONNECT or absolute-form) for `host`, without its Date line. */
    const rawAnswer = async (login: string, key: string, host: string, connect: boolean) => {
      const auth = Buffer.from(`${login}:${key}`).toString('base64');
      const line = connect ? `CONNECT ${host}:${port()}` : `GET http://${host}:${port()}/hello`;
      const answer = await rawExchange(
        proxyPort,
        `${line} HTTP/1.1\r\nHost: ${host}:${port()}\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`,
      );
      return answer.replace(/^Date: .*\r\n/m, '');
    };
    /** What curl saw: the body, then the status (of the CONNECT with `connect`). */
    const viaCurl = async (host: string, connect = false, login = ADMIN_EMAIL, key = keys.admin) =>
      (
        await curl([
          ...(connect ? ['-p'] : []),
          ...proxyAs(login, key),
          '-w',
          connect ? '\n%{http_connect}' : '\n%{http_code}',
          `http://${host}:${port()}/hello`,
        ])
      ).stdout;
    const ourPrefix = 'abcdef1';
    const ourUuid = `${ourPrefix}${'0'.repeat(25)}`;
    const betaUuid = `${ourPrefix}${'f'.repeat(25)}`;

    beforeAll(async () => {
      await must('PATCH', `/api/v1/devices/${uuid}`, { name: 'Lobby-Kiosk' });
      const fleetId = (await must('GET', `/api/v1/devices/${uuid}`)).fleetId as number;
      const ours: Array<{ name: string; uuid?: string }> = [
        { name: 'küche' },
        { name: 'twin' },
        { name: 'twin' },
        { name: 'Pair' },
        { name: 'PAIR' },
        { name: 'Echo' },
        { name: 'echo' },
        { name: 'shared-name' },
        { name: 'prefixed', uuid: ourUuid },
        { name: 'Hall display' },
      ];
      for (const device of ours) await must('POST', '/api/v1/devices', { fleetId, ...device });
      // The other organization: a name of its own, a name we use too, and a uuid sharing our device's prefix.
      const beta = (await must('GET', '/api/v1/orgs', undefined, keys.outsider)).items[0];
      const betaFleet = await must(
        'POST',
        '/api/v1/fleets',
        { orgId: beta.id, name: 'beta-proxy', defaultDeviceType: 'generic-amd64' },
        keys.outsider,
      );
      await must(
        'PUT',
        `/api/v1/fleets/${betaFleet.id}/allowed-ports`,
        { ports: [devicePort] },
        keys.outsider,
      );
      for (const device of [{ name: 'beta-only' }, { name: 'shared-name' }, { name: 'beta', uuid: betaUuid }])
        await must('POST', '/api/v1/devices', { fleetId: betaFleet.id, ...device }, keys.outsider);
    });

    it('reaches a device by its name in any case, and by a uuid prefix, with curl -x and curl -p', async () => {
      for (const host of ['lobby-kiosk.devices', 'LOBBY-KIOSK.devices', `${uuid.slice(0, 8)}.devices`]) {
        expect(await viaCurl(host), host).toBe('hello from the device: GET /hello\n\n200');
        expect(await viaCurl(host, true), host).toBe('hello from the device: GET /hello\n\n200');
      }
      // The offline devices answer 503 (they were found) rather than 407 (unknown): a name with letters outside
      // ASCII (curl sends it as punycode), another prefix.
      expect(await viaCurl('küche.devices', true)).toBe('\n503');
      expect(await viaCurl(`${ourPrefix}0.devices`)).toMatch(/device prefixed .* is offline.*\n503$/s);
    });

    it('never counts another organization’s devices: the same name or prefix here, and theirs is reached', async () => {
      // The outsider belongs to Beta only (the admin, who created Beta, belongs to both).
      const theirs = (host: string) => viaCurl(host, false, logins.outsider, keys.outsider);
      expect(await theirs('shared-name.devices')).toMatch(/device shared-name .* is offline.*\n503$/s);
      expect(await theirs(`${ourPrefix}.devices`)).toMatch(
        new RegExp(`device beta \\(${betaUuid}\\) is offline.*\\n503$`, 's'),
      );
    });

    it('refuses another organization’s device name or prefix exactly as an unknown one', async () => {
      /** `host`'s answer is byte for byte that of an unknown name of the same length, but for the name. */
      const sameAsUnknown = async (login: string, key: string, host: string, connect: boolean) => {
        const unknownHost = `${'z'.repeat(host.length - '.devices'.length)}.devices`;
        const unknown = await rawAnswer(login, key, unknownHost, connect);
        expect(unknown).toMatch(/^HTTP\/1\.1 407 /);
        expect(unknown).toContain('Proxy-Authenticate: Basic realm="fleetgate"');
        expect(unknown).toContain(`your credentials do not reach ${unknownHost}:${port()}`);
        const answer = await rawAnswer(login, key, host, connect);
        expect(answer.replaceAll(host, unknownHost), host).toBe(unknown);
      };
      for (const connect of [true, false]) {
        // Our viewer (organization 1 only) and Beta's device name.
        await sameAsUnknown(logins.viewer, keys.viewer, 'beta-only.devices', connect);
        // Beta's owner and our device's name and uuid prefix.
        await sameAsUnknown(logins.outsider, keys.outsider, 'lobby-kiosk.devices', connect);
        await sameAsUnknown(logins.outsider, keys.outsider, `${uuid.slice(0, 8)}.devices`, connect);
      }
    });

    it('answers 409 to a name several of the person’s devices share, telling them to use the uuid', async () => {
      for (const host of ['twin.devices', 'pair.devices']) {
        for (const connect of [true, false]) {
          const answer = await rawAnswer(ADMIN_EMAIL, keys.admin, host, connect);
          expect(answer, host).toMatch(/^HTTP\/1\.1 409 /);
          expect(answer, host).toMatch(/names several of your devices .*: use the uuid\n$/);
        }
      }
      // A name written exactly as the host wins over the same name in another case.
      expect(await viaCurl('echo.devices')).toMatch(/device echo \([0-9a-f]{32}\) is offline.*\n503$/s);
    });

    it('takes no bare names or prefixes (only a bare uuid), and no names with characters a host cannot hold', async () => {
      const bare = await viaCurl('lobby-kiosk');
      expect(bare).toMatch(/reaches devices only: name a device as <name>\.devices:<port>.*\n400$/s);
      expect(await viaCurl(uuid.slice(0, 8), true)).toBe('\n400');
      expect(await viaCurl(uuid)).toBe('hello from the device: GET /hello\n\n200');
      // "Hall display" has a space: no host name reaches it, not even one with a dash in its place.
      expect(await viaCurl('hall-display.devices')).toMatch(/\n407$/);
    });
  });

  describe('sessions', () => {
    /** A CONNECT tunnel held open on a raw socket, after the proxy's 200. */
    async function openTunnel(): Promise<{ socket: net.Socket; received: () => string }> {
      const socket = net.connect({ port: proxyPort, host: '127.0.0.1' });
      socket.on('error', () => {});
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
      await once(socket, 'connect');
      const auth = Buffer.from(`${ADMIN_EMAIL}:${keys.admin}`).toString('base64');
      socket.write(
        `CONNECT ${uuid}.devices:${devicePort} HTTP/1.1\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`,
      );
      await waitFor(() => text.includes('\r\n\r\n'), 5000, 'the proxy to answer');
      expect(text).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\n$/);
      return { socket, received: () => text };
    }

    it('lists a CONNECT session with its bytes and outcome once it ended', async () => {
      const answer = await curl([
        '-p',
        ...proxyAs(ADMIN_EMAIL, keys.admin),
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        deviceUrl(),
      ]);
      expect(answer.stdout).toBe('200');
      const session = await waitFor(
        async () => {
          const page = (await asAdmin('GET', `/api/v1/sessions?surface=connect&device=${uuid}&live=false`))
            .body;
          return page.items[0];
        },
        5000,
        'the ended CONNECT session',
      );
      expect(session).toMatchObject({
        surface: 'connect',
        port: devicePort,
        device: { uuid },
        user: { label: ADMIN_EMAIL },
        clientAddress: '127.0.0.1',
        live: false,
        outcome: 'closed',
        terminatedBy: null,
      });
      expect(session.bytesToDevice).toBeGreaterThan(20);
      expect(session.bytesFromDevice).toBeGreaterThan(20);
      expect((await asAdmin('GET', `/api/v1/sessions/${session.id}`)).body).toMatchObject({ id: session.id });
      // Its audit events.
      const audit = (await asAdmin('GET', `/api/v1/audit?action=device.stream.close&resourceId=${uuid}`))
        .body;
      expect(
        audit.items.some((e: { details: { session: string } }) => e.details.session === session.id),
      ).toBe(true);
    });

    it('shows a live session, lets viewers read it but not end it, hides it from other organizations, and an admin ends it', async () => {
      const tunnel = await openTunnel();
      tunnel.socket.write(`GET /live HTTP/1.1\r\nHost: device\r\n\r\n`);
      await waitFor(() => tunnel.received().includes('hello from the device: GET /live'), 5000, 'the answer');
      const live = await waitFor(
        async () => (await asAdmin('GET', `/api/v1/sessions?live=true&device=${uuid}`)).body.items[0],
        5000,
        'the live session',
      );
      expect(live).toMatchObject({ live: true, endedAt: null, outcome: null, surface: 'connect' });
      expect(live.bytesFromDevice).toBeGreaterThan(0);
      // Outlives the header timeout: a tunnel is not a slow request.
      await new Promise((resolve) => setTimeout(resolve, 1300));
      expect(tunnel.socket.destroyed).toBe(false);

      // API keys are Bearer tokens for the API too.
      const viewerToken = keys.viewer;
      const outsiderToken = keys.outsider;
      const viewerList = await asAdmin('GET', '/api/v1/sessions?live=true', undefined, viewerToken);
      expect(viewerList.status).toBe(200);
      expect(viewerList.body.items.map((s: { id: string }) => s.id)).toContain(live.id);
      const viewerKill = await asAdmin(
        'POST',
        `/api/v1/sessions/${live.id}/terminate`,
        undefined,
        viewerToken,
      );
      expect(viewerKill.status).toBe(403);
      expect((await asAdmin('GET', `/api/v1/sessions/${live.id}`, undefined, outsiderToken)).status).toBe(
        404,
      );
      expect(
        (await asAdmin('POST', `/api/v1/sessions/${live.id}/terminate`, undefined, outsiderToken)).status,
      ).toBe(404);
      const outsiderList = await asAdmin('GET', '/api/v1/sessions', undefined, outsiderToken);
      expect(outsiderList.body.items).toEqual([]);
      expect((await asAdmin('GET', '/api/v1/sessions?orgId=1', undefined, outsiderToken)).status).toBe(404);

      // The client sees its connection reset, not a clean end.
      const dropped = new Promise<string>((resolve) => {
        tunnel.socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
        tunnel.socket.once('close', () => resolve('closed without a reset'));
      });
      const ended = await asAdmin('POST', `/api/v1/sessions/${live.id}/terminate`);
      expect(ended.status).toBe(200);
      expect(ended.body).toMatchObject({
        live: false,
        outcome: `terminated by ${ADMIN_EMAIL}`,
        terminatedBy: { label: ADMIN_EMAIL },
      });
      expect(await dropped).toBe('ECONNRESET');
      expect(
        (await asAdmin('POST', `/api/v1/sessions/${live.id}/terminate`)).status,
        'an ended session cannot be ended again',
      ).toBe(409);
      const audit = (await asAdmin('GET', `/api/v1/audit?action=session.terminate&resourceId=${live.id}`))
        .body;
      expect(audit.items).toHaveLength(1);
    });

    it('fleetgate sessions ls --live, show and kill', async () => {
      const cli = async (...args: string[]) => {
        const memory = memoryIo({ env: { FLEETGATE_SERVER: server.url, FLEETGATE_TOKEN: keys.admin } });
        const code = await runCli(args, memory.io);
        return { code, stdout: memory.stdout(), stderr: memory.stderr() };
      };
      const tunnel = await openTunnel();
      const live = await waitFor(
        async () => (await asAdmin('GET', `/api/v1/sessions?live=true&device=${uuid}`)).body.items[0],
        5000,
        'the live session',
      );
      const listed = await cli('sessions', 'ls', '--live');
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(
        new RegExp(`${live.id} .*${ADMIN_EMAIL}.* connect .*port ${devicePort}.* live`),
      );
      const json = JSON.parse((await cli('--json', 'sessions', 'ls', '--live')).stdout);
      expect(json.items.map((item: { id: string }) => item.id)).toContain(live.id);
      const shown = await cli('sessions', 'show', live.id);
      expect(shown.stdout).toMatch(/live: +yes/);
      const dropped = new Promise<void>((resolve) => tunnel.socket.once('close', () => resolve()));
      const killed = await cli('sessions', 'kill', live.id);
      expect(killed).toMatchObject({ code: 0, stderr: '' });
      expect(killed.stdout).toMatch(`ended session ${live.id}`);
      await dropped;
      const again = await cli('sessions', 'kill', live.id);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/already ended/);
      expect((await cli('sessions', 'show', 'nonsense')).stderr).toMatch(/not a session id/);
    });
  });
});
