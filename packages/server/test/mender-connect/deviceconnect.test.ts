import { pack, unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { signedAuthRequest, testKey } from '../auth-sets/signing.ts';
import { dialectUnderTest } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';

/**
 * `GET /api/devices/v1/deviceconnect/connect` spoken byte for byte as mender-connect speaks it (msgpack maps over a
 * binary WebSocket, the device JWT from `auth_requests`): the upgrade's refusals, presence while connected,
 * hostile frames closing the connection with a reason, and decommission dropping the link at once. The real
 * mender-connect runs in test/mender/mender-connect.test.ts.
 */

const DEVAUTH = '/api/management/v2/devauth';

describe(`the deviceconnect endpoint (${dialectUnderTest})`, () => {
  let server: ListeningServer;
  let wsUrl: string;
  let serial = 0;

  const api = (method: string, url: string, body?: unknown) =>
    requestJson(`${server.url}${url}`, { method, token: server.adminToken, ...(body ? { body } : {}) });

  /** A preauthorized device's JWT, got as the mender-client gets it; answers its uuid too. */
  const enrolledDevice = async (): Promise<{ jwt: string; uuid: string }> => {
    const key = testKey('ed25519');
    const identity = { mac: `02:dc:00:00:00:${(++serial).toString(16).padStart(2, '0')}` };
    const pre = await api('POST', `${DEVAUTH}/devices`, { identity_data: identity, pubkey: key.publicPem });
    expect(pre.status, pre.text).toBe(201);
    const uuid = String(pre.headers.location).split('/').pop()!;
    const { payload, headers } = signedAuthRequest(key, identity);
    const answer = await fetch(`${server.url}/api/devices/v1/authentication/auth_requests`, {
      method: 'POST',
      headers,
      body: new Uint8Array(payload),
    });
    expect(answer.status).toBe(200);
    return { jwt: await answer.text(), uuid };
  };

  /** Connects as mender-connect does; answers the socket once open, or the refusal's status and body. */
  const connect = (jwt: string | undefined) =>
    new Promise<{ ws: WebSocket } | { status: number; body: string }>((resolve, reject) => {
      const ws = new WebSocket(wsUrl, {
        headers: jwt === undefined ? {} : { authorization: `Bearer ${jwt}` },
      });
      ws.once('open', () => resolve({ ws }));
      ws.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (c: Buffer) => {
          body += c.toString();
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      ws.once('error', reject);
    });
  const connected = async (jwt: string) => {
    const answer = await connect(jwt);
    if (!('ws' in answer)) throw new Error(`refused: ${answer.status} ${answer.body}`);
    return answer.ws;
  };
  const closeOf = (ws: WebSocket) =>
    new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() })),
    );
  const statusOf = async (uuid: string) => {
    const shown = await api('GET', `/api/v1/devices/${uuid}`);
    return shown.body as { status: string; onlineVia: string[] };
  };
  const eventually = async <T>(read: () => Promise<T>, ok: (value: T) => boolean, ms = 5000): Promise<T> => {
    const deadline = Date.now() + ms;
    let value = await read();
    while (!ok(value) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      value = await read();
    }
    return value;
  };

  beforeAll(async () => {
    // Pings every 300 ms, so a silent device is closed within a second (twice the interval without a sign of life).
    server = await startListeningServer({ flags: { presenceFlushMs: 100, tunnelPingIntervalMs: 300 } });
    wsUrl = `${server.url.replace(/^http/, 'ws')}/api/devices/v1/deviceconnect/connect`;
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'dc-fleet',
      defaultDeviceType: 'qemux86-64',
    });
    expect(fleet.status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });

  it('refuses a missing or unknown token with 401 in the API error shape', async () => {
    for (const jwt of [undefined, 'not-a-jwt']) {
      const answer = await connect(jwt);
      expect('status' in answer && answer.status).toBe(401);
      if ('body' in answer) expect(JSON.parse(answer.body).error.code).toBe('unauthorized');
    }
  });

  it('shows the device online through mender-connect while connected, offline after', async () => {
    const device = await enrolledDevice();
    const ws = await connected(device.jwt);
    const online = await eventually(
      () => statusOf(device.uuid),
      (s) => s.status === 'online',
    );
    expect(online).toMatchObject({ status: 'online', onlineVia: ['mender-connect'] });
    const metrics = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
    });
    expect(await metrics.text()).toMatch(/^fleetgate_mender_connect_links 1$/m);
    // The device's session handshake and ping are answered as Mender's server answers them.
    const answers: unknown[] = [];
    ws.on('message', (data: Buffer) => answers.push(unpack(data)));
    ws.send(pack({ hdr: { proto: 0xffff, typ: 'ping', sid: 's1' } }));
    await eventually(
      async () => answers.length,
      (n) => n > 0,
    );
    expect(answers[0]).toMatchObject({ hdr: { proto: 0xffff, typ: 'pong', sid: 's1' } });
    const closed = closeOf(ws);
    ws.close();
    await closed;
    const offline = await eventually(
      () => statusOf(device.uuid),
      (s) => s.status === 'offline',
    );
    expect(offline).toMatchObject({ status: 'offline', onlineVia: [] });
    const history = await api('GET', `/api/v1/devices/${device.uuid}/connections`);
    expect(history.body.items[0]).toMatchObject({ link: 'mender-connect' });
  });

  it('closes with a protocol error and its reason on garbage, text, wrong types and oversized messages', async () => {
    const device = await enrolledDevice();
    const hostile: [string, (ws: WebSocket) => void, number, RegExp][] = [
      ['random bytes', (ws) => ws.send(Buffer.from([0xc1, 0x00, 0xff])), 1002, /not msgpack/],
      [
        'truncated',
        (ws) => ws.send(pack({ hdr: { proto: 1, typ: 'shell' } }).subarray(0, 5)),
        1002,
        /not msgpack/,
      ],
      ['a text message', (ws) => ws.send('hello'), 1002, /binary/],
      ['a proto that is a string', (ws) => ws.send(pack({ hdr: { proto: 'shell' } })), 1002, /proto/],
      ['a body that is a number', (ws) => ws.send(pack({ hdr: { proto: 1 }, body: 5 })), 1002, /body/],
      ['a message over 64 KiB', (ws) => ws.send(Buffer.alloc(70 * 1024)), 1009, /./],
    ];
    for (const [what, send, code, reason] of hostile) {
      const ws = await connected(device.jwt);
      const closed = closeOf(ws);
      send(ws);
      const close = await closed;
      expect(close.code, what).toBe(code);
      if (code === 1002) expect(close.reason, what).toMatch(reason);
    }
    // The server is still there for the next device.
    const again = await connected(device.jwt);
    again.close();
  });

  it('pings the device; one that answers stays, one that goes silent is closed with a reason', async () => {
    const device = await enrolledDevice();
    const answering = await connected(device.jwt);
    let pings = 0;
    answering.on('ping', () => {
      pings += 1;
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(pings).toBeGreaterThan(1);
    expect(answering.readyState).toBe(WebSocket.OPEN);
    answering.close();
    // A device whose socket stops reading (and answering): ws answers pings itself, so pause the socket.
    const silent = await connected(device.jwt);
    (silent as unknown as { _socket: { pause(): void } })._socket.pause();
    const started = Date.now();
    // The paused socket reads no close frame: the server's end shows in the connection history.
    const history = await eventually(
      async () => (await api('GET', `/api/v1/devices/${device.uuid}/connections?limit=1`)).body.items,
      (items: { closeReason: string | null }[]) => items[0]?.closeReason === 'no answer to pings',
    );
    expect(history[0]).toMatchObject({
      link: 'mender-connect',
      closeCode: 4000,
      closeReason: 'no answer to pings',
    });
    expect(Date.now() - started).toBeLessThan(3000);
    silent.terminate();
  });

  it("rejecting the device's auth set closes its link with the reason; its token is then refused", async () => {
    const device = await enrolledDevice();
    const ws = await connected(device.jwt);
    const closed = closeOf(ws);
    const shown = await api('GET', `${DEVAUTH}/devices/${device.uuid}`);
    const set = shown.body.auth_sets[0];
    const rejected = await api('PUT', `${DEVAUTH}/devices/${device.uuid}/auth/${set.id}/status`, {
      status: 'rejected',
    });
    expect(rejected.status, rejected.text).toBe(204);
    expect(await closed).toMatchObject({ code: 4002, reason: 'the device credential was revoked' });
    expect(await connect(device.jwt)).toMatchObject({ status: 401 });
  });

  it('a newer connection of the device replaces the older one', async () => {
    const device = await enrolledDevice();
    const first = await connected(device.jwt);
    const firstClosed = closeOf(first);
    const second = await connected(device.jwt);
    expect((await firstClosed).code).toBe(4003);
    expect(second.readyState).toBe(WebSocket.OPEN);
    second.close();
  });

  it('decommission drops the link within a second; the device is then refused with 403 decommissioned', async () => {
    const device = await enrolledDevice();
    const ws = await connected(device.jwt);
    await eventually(
      () => statusOf(device.uuid),
      (s) => s.status === 'online',
    );
    const closed = closeOf(ws);
    const started = Date.now();
    const gone = await api('DELETE', `${DEVAUTH}/devices/${device.uuid}`);
    expect(gone.status).toBe(204);
    const close = await closed;
    expect(close.at - started).toBeLessThan(1000);
    expect(close).toMatchObject({ code: 4001, reason: 'the device was decommissioned' });
    const again = await connect(device.jwt);
    expect(again).toMatchObject({ status: 403 });
    if ('body' in again) expect(JSON.parse(again.body).error.details.reason).toBe('decommissioned');
    // No stream reaches it: decommissioned, not offline.
    expect((await statusOf(device.uuid)).status).toBe('decommissioned');
  });
});
