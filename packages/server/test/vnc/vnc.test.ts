/**
 * VNC in the browser, server side: the WebSocket at `/api/v1/devices/:device/ports/:port/vnc` with a real client
 * (`ws`, speaking as noVNC does), a real fleetgate server, a real agent (in-process, over real sockets) and a real
 * VNC server on the device's side (Debian's x11vnc on an Xvfb display), on SQLite and on PostgreSQL.
 */
import http from 'node:http';
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs, waitFor } from '@fleetgate/agent/test/helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ADMIN_EMAIL } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import { startVncDisplay, type VncDisplay, vncToolsMissing } from './vnc-display.ts';

const missing = vncToolsMissing();
if (missing) console.warn(`SKIPPED VNC tests: ${missing}`);

// CI (.ci/run sets CI=1) installs them: there, a missing one is a failure, never a skip.
describe.runIf(missing && process.env.CI)('VNC test prerequisites', () => {
  it('are present on CI', () => {
    expect.fail(`the VNC tests cannot run: ${missing}`);
  });
});

/** One VNC WebSocket as the test drives it: the bytes the device's VNC server sent, and how it closed. */
interface Viewer {
  ws: WebSocket;
  /** The session id from the 101 answer's `Fleetgate-Session`. */
  session: string;
  /** The subprotocol the server chose. */
  protocol: string;
  received(): Buffer;
  /** Waits until at least `length` bytes came. */
  read(length: number): Promise<Buffer>;
  closed: Promise<{ code: number; reason: string }>;
}

describe.skipIf(missing)('VNC in the browser', () => {
  let server: ListeningServer;
  let vnc: VncDisplay;
  let agent: Agent;
  let uuid: string;
  let operatorToken: string;
  let operatorId: number;
  let viewerToken: string;
  let betaToken: string;

  const api = async (method: string, url: string, body?: unknown, token = server.adminToken) => {
    const answer = await requestJson(`${server.url}${url}`, { method, body, token });
    if (answer.status >= 300)
      throw new Error(`${method} ${url}: ${answer.status} ${answer.text.slice(0, 300)}`);
    return answer.body;
  };
  const login = async (email: string, password: string) =>
    (await api('POST', '/api/v1/auth/login', { email, password }, '')).token as string;
  const vncUrl = (port = vnc.port, device = uuid) =>
    `${server.url.replace(/^http/, 'ws')}/api/v1/devices/${device}/ports/${port}/vnc`;

  /** Opens the WebSocket as noVNC would; `headers` carry the credential (Authorization, or Cookie + Origin). */
  const open = (
    headers: Record<string, string>,
    options: { port?: number; protocols?: string[] } = {},
  ): Promise<Viewer> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(vncUrl(options.port), options.protocols ?? ['binary'], { headers });
      const chunks: Buffer[] = [];
      let session = '';
      const closed = new Promise<{ code: number; reason: string }>((done) =>
        ws.once('close', (code, reason) => done({ code, reason: reason.toString() })),
      );
      ws.on('message', (data: Buffer) => chunks.push(data));
      ws.once('upgrade', (response) => {
        session = String(response.headers['fleetgate-session'] ?? '');
      });
      ws.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk));
        response.on('end', () =>
          reject(
            Object.assign(new Error(`refused: ${response.statusCode} ${body}`), {
              status: response.statusCode,
              body,
            }),
          ),
        );
      });
      ws.once('error', reject);
      ws.once('open', () => {
        const received = () => Buffer.concat(chunks);
        resolve({
          ws,
          session,
          protocol: ws.protocol,
          received,
          read: (length) =>
            // waitFor answers only a value that is there: the fallback is for the types.
            waitFor(
              () => (received().length >= length ? received() : undefined),
              10_000,
              `${length} bytes`,
            ).then((all) => all ?? Buffer.alloc(0)),
          closed,
        });
      });
    });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  /** What refusing an upgrade answers: status and error code. */
  const refusal = async (opening: Promise<Viewer>) => {
    const error = (await opening.then(
      (v) => {
        v.ws.close();
        throw new Error('the VNC WebSocket opened');
      },
      (e: unknown) => e,
    )) as { status: number; body: string };
    return { status: error.status, code: JSON.parse(error.body).error.code as string };
  };
  /** Reads the RFB banner, answers with the same version, and reads the security types the server offers. */
  const handshake = async (viewer: Viewer) => {
    const banner = (await viewer.read(12)).subarray(0, 12).toString('latin1');
    viewer.ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
    const types = await viewer.read(13);
    return { banner, securityTypes: [...types.subarray(13, 13 + (types[12] ?? 0))] };
  };

  /**
   * Goes on from `handshake` (security None, shared), asks for the whole screen in raw encoding, and answers the
   * share of its pixels of each colour, `#rrggbb` (x11vnc's pixel format: 32 bits, little-endian, red at bit 16).
   */
  const screenColours = async (viewer: Viewer) => {
    let offset = 0;
    const take = async (length: number) => {
      const all = await viewer.read(offset + length);
      offset += length;
      return all.subarray(offset - length, offset);
    };
    await take(12 + 2);
    viewer.ws.send(Buffer.from([1]));
    expect((await take(4)).readUInt32BE(0)).toBe(0);
    viewer.ws.send(Buffer.from([1]));
    const init = await take(24);
    const [width, height] = [init.readUInt16BE(0), init.readUInt16BE(2)];
    await take(init.readUInt32BE(20));
    viewer.ws.send(Buffer.from([2, 0, 0, 1, 0, 0, 0, 0]));
    const request = Buffer.alloc(10);
    request[0] = 3;
    request.writeUInt16BE(width, 6);
    request.writeUInt16BE(height, 8);
    viewer.ws.send(request);
    const colours = new Map<string, number>();
    let covered = 0;
    while (covered < width * height) {
      const update = await take(4);
      expect(update[0]).toBe(0);
      for (let rects = update.readUInt16BE(2); rects > 0; rects--) {
        const rect = await take(12);
        const pixels = rect.readUInt16BE(4) * rect.readUInt16BE(6);
        expect(rect.readInt32BE(8)).toBe(0);
        const data = await take(pixels * 4);
        for (let at = 0; at < data.length; at += 4) {
          const colour = `#${(data.readUInt32LE(at) & 0xffffff).toString(16).padStart(6, '0')}`;
          colours.set(colour, (colours.get(colour) ?? 0) + 1);
        }
        covered += pixels;
      }
    }
    return Object.fromEntries([...colours].map(([colour, count]) => [colour, count / (width * height)]));
  };

  beforeAll(async () => {
    vnc = await startVncDisplay({ color: '#1e90ff', width: 64, height: 48 });
    server = await startListeningServer({ flags: { presenceFlushMs: 50 } });
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'vnc-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'vnc' });
    ({ agent, uuid } = await enrollAgent(
      server.url,
      key,
      { agentVersion: '0.1.0-vnc', allowedPorts: [22, vnc.port] },
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    ));
    await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [22, vnc.port] });
    const operator = await api('POST', '/api/v1/orgs/1/members', {
      email: 'op@example.test',
      role: 'operator',
    });
    operatorId = operator.userId;
    operatorToken = await login('op@example.test', operator.password);
    const viewer = await api('POST', '/api/v1/orgs/1/members', {
      email: 'viewer@example.test',
      role: 'viewer',
    });
    viewerToken = await login('viewer@example.test', viewer.password);
    await api('POST', '/api/v1/users', { email: 'beta@example.test', password: 'beta owner password' });
    betaToken = await login('beta@example.test', 'beta owner password');
    await api('POST', '/api/v1/orgs', { name: 'Beta' }, betaToken);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await server?.close();
    await vnc?.stop();
    removeTemporaryDirs();
  });

  it("carries the device's VNC server both ways (its RFB banner, its screen's colour), listed and audited as a vnc session", async () => {
    const viewer = await open(bearer(operatorToken));
    expect(viewer.protocol).toBe('binary');
    expect(viewer.session).toMatch(/^[0-9a-f]{16}$/);
    const { banner, securityTypes } = await handshake(viewer);
    expect(banner).toMatch(/^RFB 003\.00\d\n$/);
    // x11vnc -nopw offers security type 1 (None).
    expect(securityTypes).toEqual([1]);
    // The display's own colour, all but the pointer x11vnc draws in (black and white, at most 20×20 pixels).
    const colours = await screenColours(viewer);
    expect(colours['#1e90ff']).toBeGreaterThan(0.85);
    expect(Object.keys(colours).sort()).toEqual(['#000000', '#1e90ff', '#ffffff']);

    const live = await api('GET', '/api/v1/sessions?surface=vnc');
    expect(live.items).toContainEqual(
      expect.objectContaining({
        id: viewer.session,
        surface: 'vnc',
        port: vnc.port,
        target: `port ${vnc.port}`,
        live: true,
        user: expect.objectContaining({ label: 'op@example.test' }),
      }),
    );
    viewer.ws.close();
    expect((await viewer.closed).code).toBe(1005);
    const ended = await waitFor(async () => {
      const found = await api('GET', `/api/v1/sessions/${viewer.session}`);
      return found.live ? undefined : found;
    });
    expect(ended).toMatchObject({ surface: 'vnc', outcome: 'closed' });
    // The version, security type, ClientInit, SetEncodings and the update request; the screen the other way.
    expect(ended.bytesToDevice).toBe(12 + 1 + 1 + 8 + 10);
    expect(ended.bytesFromDevice).toBeGreaterThan(64 * 48 * 4);
    const trail = await waitFor(async () => {
      const page = await api('GET', `/api/v1/audit?orgId=1&session=${viewer.session}`);
      return page.items.length >= 2 ? page : undefined;
    });
    expect((trail.items as { action: string }[]).map((e) => e.action).sort()).toEqual([
      'device.stream.close',
      'device.stream.open',
    ]);
  });

  it('opens without a subprotocol too (noVNC 1.7 asks for none), and refuses any other', async () => {
    const viewer = await open(bearer(operatorToken), { protocols: [] });
    expect(viewer.protocol).toBe('');
    expect((await handshake(viewer)).banner).toMatch(/^RFB 003\.00\d\n$/);
    viewer.ws.close();
    expect(await refusal(open(bearer(operatorToken), { protocols: ['base64'] }))).toEqual({
      status: 400,
      code: 'bad_request',
    });
  });

  it('takes the session cookie from its own origin only (cross-site WebSocket hijacking)', async () => {
    const cookie = `fleetgate_session=${operatorToken}`;
    expect(await refusal(open({ cookie, origin: 'http://evil.example' }))).toEqual({
      status: 403,
      code: 'forbidden',
    });
    const viewer = await open({ cookie, origin: server.url });
    expect((await handshake(viewer)).banner).toMatch(/^RFB 003\.00\d\n$/);
    viewer.ws.close();
    expect(await refusal(open({}))).toEqual({ status: 401, code: 'unauthorized' });
  });

  it('is refused to a viewer (403), to another organization (404), for a port off the allow-list (403) and a port that is none (400)', async () => {
    expect(await refusal(open(bearer(viewerToken)))).toEqual({ status: 403, code: 'forbidden' });
    expect(await refusal(open(bearer(betaToken)))).toEqual({ status: 404, code: 'not_found' });
    expect(await refusal(open(bearer(operatorToken), { port: 5999 }))).toEqual({
      status: 403,
      code: 'forbidden',
    });
    expect(await refusal(open(bearer(operatorToken), { port: 70000 }))).toEqual({
      status: 400,
      code: 'bad_request',
    });
    // The same URL without the upgrade says so too, for the UI to offer the viewer or explain why not.
    const access = async (token: string, port = vnc.port) => {
      const answer = await requestJson(vncUrl(port).replace(/^ws/, 'http'), { token });
      return answer.status === 200 ? answer.body.allowed : answer.status;
    };
    expect([
      await access(operatorToken),
      await access(operatorToken, 5999),
      await access(viewerToken),
      await access(betaToken),
    ]).toEqual([true, false, 403, 404]);
  });

  it('answers an upgrade that is not a WebSocket handshake, or names no device, with a clear 4xx', async () => {
    /** Sends an upgrade request by hand: its status and error code. */
    const upgrade = (path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; code: string }>((resolve, reject) => {
        const request = http.request(`${server.url}${path}`, {
          headers: { connection: 'Upgrade', authorization: `Bearer ${operatorToken}`, ...headers },
        });
        request.once('upgrade', () => reject(new Error('upgraded')));
        request.once('response', (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, code: JSON.parse(body).error.code }),
          );
        });
        request.once('error', reject);
        request.end();
      });
    const path = `/api/v1/devices/${uuid}/ports/${vnc.port}/vnc`;
    const handshake = {
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    };
    expect(await upgrade(path, { upgrade: 'fleetgate-stream' })).toEqual({
      status: 400,
      code: 'bad_request',
    });
    expect(await upgrade(path, { upgrade: 'websocket' })).toEqual({ status: 400, code: 'bad_request' });
    expect(await upgrade(`/api/v1/devices/not-a-device/ports/${vnc.port}/vnc`, handshake)).toEqual({
      status: 404,
      code: 'not_found',
    });
    expect(await upgrade(`/api/v1/devices/${'f'.repeat(32)}/ports/${vnc.port}/vnc`, handshake)).toEqual({
      status: 404,
      code: 'not_found',
    });
  });

  it('ends when an administrator terminates the session, saying so', async () => {
    const viewer = await open(bearer(operatorToken));
    await handshake(viewer);
    await api('POST', `/api/v1/sessions/${viewer.session}/terminate`);
    expect(await viewer.closed).toEqual({ code: 4000, reason: `terminated by ${ADMIN_EMAIL}` });
    const session = await api('GET', `/api/v1/sessions/${viewer.session}`);
    expect(session).toMatchObject({ live: false, outcome: `terminated by ${ADMIN_EMAIL}` });
  });

  it('ends when the person loses access (their role lowered to viewer), saying so', async () => {
    const viewer = await open(bearer(operatorToken));
    await handshake(viewer);
    await api('PATCH', `/api/v1/orgs/1/members/${operatorId}`, { role: 'viewer' });
    const closed = await viewer.closed;
    expect(closed.code).toBe(4001);
    expect(closed.reason).toMatch(/^access revoked/);
    await api('PATCH', `/api/v1/orgs/1/members/${operatorId}`, { role: 'operator' });
  });

  it('closes with a reason on a text frame or an oversized frame, and goes on serving', async () => {
    const text = await open(bearer(operatorToken));
    text.ws.send('RFB 003.008\n');
    expect(await text.closed).toEqual({ code: 1003, reason: 'only binary frames carry the VNC connection' });
    const huge = await open(bearer(operatorToken));
    huge.ws.send(Buffer.alloc(1024 * 1024 + 1));
    expect((await huge.closed).code).toBe(1009);
    const fine = await open(bearer(operatorToken));
    expect((await handshake(fine)).banner).toMatch(/^RFB 003\.00\d\n$/);
    fine.ws.close();
  });

  it('closes with 1000 when the VNC server hangs up', async () => {
    const viewer = await open(bearer(operatorToken));
    await viewer.read(12);
    // A version x11vnc does not speak: it says so and closes the connection.
    viewer.ws.send(Buffer.from('RFB 009.999\n', 'latin1'));
    expect(await viewer.closed).toEqual({ code: 1000, reason: 'the VNC server closed the connection' });
  });

  it('ends when the device goes offline, saying so, and is refused (503) while it is', async () => {
    const viewer = await open(bearer(server.adminToken));
    await handshake(viewer);
    await agent.stop();
    const closed = await viewer.closed;
    expect(closed.code).toBe(4002);
    expect(closed.reason).toMatch(/offline|reset/);
    await waitFor(async () => (await api('GET', `/api/v1/devices/${uuid}`)).status === 'offline');
    expect(await refusal(open(bearer(server.adminToken)))).toEqual({ status: 503, code: 'unavailable' });
  });
});
