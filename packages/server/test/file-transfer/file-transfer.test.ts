/**
 * File transfer (`GET`/`PUT /api/v1/devices/:device/files`) with real HTTP clients against a real fleetgate server
 * and a real agent (in-process, over real sockets) reading and writing real files, on SQLite and on PostgreSQL.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Agent } from '@fleetgate/agent';
import {
  enrollAgent,
  removeTemporaryDirs,
  shellEnv,
  temporaryDir,
  testConfig,
  waitFor,
} from '@fleetgate/agent/test/helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';

const MiB = 1024 * 1024;
/**
 * The server's limit here: above the 5 MB file of the round trip and the 24 MiB one that changes while it is
 * downloaded (larger than every buffer on the way, so that the agent is still reading it when it changes).
 */
const LIMIT = 32 * MiB;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The response ended as announced (a cut download ends with an error instead). */
  complete: boolean;
}

describe('file transfer', () => {
  let server: ListeningServer;
  let agent: Agent;
  let uuid: string;
  let deviceName: string;
  let dir: string;
  let viewerToken: string;
  let betaToken: string;
  const agents: Agent[] = [];

  const api = async (method: string, url: string, body?: unknown, token = server.adminToken) => {
    const answer = await requestJson(`${server.url}${url}`, { method, body, token });
    if (answer.status >= 300)
      throw new Error(`${method} ${url}: ${answer.status} ${answer.text.slice(0, 300)}`);
    return answer.body;
  };
  const login = async (email: string, password: string) =>
    (await api('POST', '/api/v1/auth/login', { email, password }, '')).token as string;
  const filesUrl = (device: string, filePath: string, query = '') =>
    `${server.url}/api/v1/devices/${encodeURIComponent(device)}/files?path=${encodeURIComponent(filePath)}${query}`;

  /** One request; `body` is sent with Content-Length, or chunked with `chunked`; `cutAfter` bytes, then the socket is destroyed. */
  const request = (
    method: string,
    url: string,
    options: {
      token?: string;
      body?: Buffer;
      chunked?: boolean;
      headers?: Record<string, string>;
      cutAfter?: number;
    } = {},
  ): Promise<RawAnswer> =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string> = {
        authorization: `Bearer ${options.token ?? server.adminToken}`,
        ...(options.body && !options.headers ? { 'content-type': 'application/octet-stream' } : {}),
        ...(options.body && !options.chunked ? { 'content-length': String(options.body.length) } : {}),
        ...options.headers,
      };
      const outgoing = http.request(url, { method, headers, agent: false }, (response) => {
        const chunks: Buffer[] = [];
        let complete = false;
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          complete = true;
        });
        response.on('close', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
            complete,
          }),
        );
        response.on('error', () => {});
      });
      outgoing.on('error', (error) =>
        options.cutAfter === undefined
          ? reject(error)
          : resolve({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false }),
      );
      const body = options.body;
      if (!body) {
        outgoing.end();
        return;
      }
      if (options.cutAfter !== undefined) {
        outgoing.write(body.subarray(0, options.cutAfter));
        // Long enough for the bytes to reach the device's temporary file; then the connection is lost.
        setTimeout(() => outgoing.destroy(), 500);
        return;
      }
      // In pieces, so a chunked body is really sent in several chunks.
      for (let offset = 0; offset < body.length; offset += MiB)
        outgoing.write(body.subarray(offset, offset + MiB));
      outgoing.end();
    });
  const errorOf = (answer: RawAnswer) =>
    JSON.parse(answer.body.toString('utf8')).error as { code: string; message: string };
  /** Names in `dir` that look like the agent's temporary files. */
  const partFiles = () => fs.readdirSync(dir).filter((name) => name.endsWith('.part'));

  beforeAll(async () => {
    server = await startListeningServer({ flags: { presenceFlushMs: 50, fileTransferMaxBytes: LIMIT } });
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'files-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'files' });
    const online = async (id: string) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online';
    ({ agent, uuid } = await enrollAgent(server.url, key, { agentVersion: '0.1.0-files' }, online));
    agents.push(agent);
    deviceName = (await api('GET', `/api/v1/devices/${uuid}`)).name;
    dir = temporaryDir('fleetgate-files-');

    // A second device whose agent has its exec service switched off.
    const locked = new Agent({
      ...testConfig(server.url, { provisioningKey: key, name: 'locked-device', exec: { enabled: false } }),
      agentVersion: '0.1.0-files',
      baseEnv: shellEnv,
    });
    agents.push(locked);
    const lockedCredentials = await locked.enroll();
    if (lockedCredentials.type !== 'device-key') throw new Error('expected a device key');
    void locked.run();
    await waitFor(() => online(lockedCredentials.uuid), 10_000, 'the locked device to be online');

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
    for (const running of agents) await running.stop();
    await server?.close();
    removeTemporaryDirs();
  });

  it('uploads a 5 MB file and downloads it back with equal SHA-256, audited as a session of surface files', async () => {
    const bytes = randomBytes(5 * 1000 * 1000);
    const target = path.join(dir, 'five-megabytes.bin');
    // Named as a person types it: the device's name.
    const put = await request('PUT', filesUrl(deviceName, target), { body: bytes });
    expect(put.status, put.body.toString()).toBe(200);
    const written = JSON.parse(put.body.toString());
    expect(written).toEqual({
      path: target,
      size: bytes.length,
      sha256: sha256(bytes),
      session: expect.any(String),
    });
    expect(sha256(fs.readFileSync(target))).toBe(sha256(bytes));
    expect(partFiles()).toEqual([]);

    const get = await request('GET', filesUrl(uuid, target));
    expect(get.status).toBe(200);
    expect(get.complete, `${get.body.length} bytes of ${bytes.length}`).toBe(true);
    expect(get.headers['content-length']).toBe(String(bytes.length));
    expect(get.headers['content-disposition']).toBe(
      `attachment; filename="five-megabytes.bin"; filename*=UTF-8''five-megabytes.bin`,
    );
    expect(get.headers['x-content-sha256']).toBe(sha256(bytes));
    expect(sha256(get.body)).toBe(sha256(bytes));

    // Both transfers are sessions, and their ends are audited with what moved.
    const sessions = await api('GET', `/api/v1/sessions?surface=files&device=${uuid}`);
    expect(sessions.items.map((s: { target: string }) => s.target)).toEqual(
      expect.arrayContaining([`upload ${target}`, `download ${target}`]),
    );
    const closes = await waitFor(
      async () => {
        const audit = await api('GET', '/api/v1/audit?action=device.stream.close&limit=50');
        const files = audit.items.filter(
          (e: { details: { surface?: string } }) => e.details?.surface === 'files',
        );
        return files.length >= 2 ? files : undefined;
      },
      5000,
      'the sessions to end',
    );
    const details = closes.map((e: { details: Record<string, unknown> }) => e.details);
    for (const operation of ['upload', 'download']) {
      expect(details).toContainEqual(
        expect.objectContaining({
          operation,
          path: target,
          size: bytes.length,
          sha256: sha256(bytes),
          verified: true,
        }),
      );
    }
    fs.rmSync(target);
  });

  it('refuses a file over the limit with 413, before reading it or when a chunked body reaches it, writing nothing', async () => {
    const target = path.join(dir, 'too-large.bin');
    // Refused from the header alone: only a few bytes of the announced size are ever sent.
    // Clients may ask first.
    expect(await api('GET', '/api/v1/file-transfer', undefined, viewerToken)).toEqual({ maxBytes: LIMIT });
    const declared = await request('PUT', filesUrl(uuid, target), {
      body: Buffer.from('the start of a big file'),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(LIMIT + 1) },
    });
    expect(declared.status).toBe(413);
    expect(errorOf(declared).message).toContain('FLEETGATE_FILE_TRANSFER_MAX_BYTES');
    const bytes = randomBytes(LIMIT + MiB);
    const chunked = await request('PUT', filesUrl(uuid, target), { body: bytes, chunked: true });
    expect(chunked.status).toBe(413);
    await waitFor(() => partFiles().length === 0 || undefined, 5000, 'no temporary file');
    expect(fs.existsSync(target)).toBe(false);

    // A download over the limit is refused too.
    fs.writeFileSync(target, bytes.subarray(0, LIMIT + 1));
    const get = await request('GET', filesUrl(uuid, target));
    expect(get.status).toBe(413);
    fs.rmSync(target);
  });

  it('cuts a download short, never completing it, when the file changes while it is sent', async () => {
    const bytes = randomBytes(24 * MiB);
    const target = path.join(dir, 'changing.bin');
    fs.writeFileSync(target, bytes);
    const answer = await new Promise<RawAnswer>((resolve) => {
      http.get(
        filesUrl(uuid, target),
        { headers: { authorization: `Bearer ${server.adminToken}` } },
        (response) => {
          const chunks: Buffer[] = [];
          let complete = false;
          // Not read at first: the device sends what the buffers on the way hold, then waits, mid-file.
          response.pause();
          setTimeout(() => {
            const fd = fs.openSync(target, 'r+');
            fs.writeSync(fd, Buffer.from('changed'), 0, 7, bytes.length - 7);
            fs.closeSync(fd);
            response.on('data', (chunk: Buffer) => chunks.push(chunk));
            response.resume();
          }, 500);
          response.on('end', () => {
            complete = true;
          });
          response.on('error', () => {});
          response.on('close', () =>
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: Buffer.concat(chunks),
              complete,
            }),
          );
        },
      );
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['x-content-sha256']).toBe(sha256(bytes));
    expect(answer.complete).toBe(false);
    expect(answer.body.length).toBeLessThan(bytes.length);
    fs.rmSync(target);
  });

  it('refuses an upload whose SHA-256 is not the one given (422), leaving the old file in place', async () => {
    const target = path.join(dir, 'checked.txt');
    fs.writeFileSync(target, 'before');
    const bytes = Buffer.from('after, but damaged on the way');
    const wrong = sha256(Buffer.from('what the sender meant'));
    const inQuery = await request('PUT', filesUrl(uuid, target, `&sha256=${wrong}`), { body: bytes });
    expect(inQuery.status).toBe(422);
    expect(errorOf(inQuery).message).toContain('nothing was written');
    const inHeader = await request('PUT', filesUrl(uuid, target), {
      body: bytes,
      headers: { 'x-content-sha256': wrong.toUpperCase() },
    });
    expect(inHeader.status).toBe(422);
    expect(fs.readFileSync(target, 'utf8')).toBe('before');
    expect(partFiles()).toEqual([]);
    // The right one is taken; without a content type too (curl -T sends none), and JSON is not parsed as JSON.
    const json = Buffer.from('{"a":1}');
    for (const type of [undefined, 'application/json']) {
      const untyped = await request('PUT', filesUrl(uuid, target), {
        body: json,
        headers: type ? { 'content-type': type } : {},
      });
      expect(untyped.status, untyped.body.toString()).toBe(200);
      expect(fs.readFileSync(target, 'utf8')).toBe('{"a":1}');
    }
    // The right one is taken.
    const right = await request('PUT', filesUrl(uuid, target, `&sha256=${sha256(bytes)}&mode=0600`), {
      body: bytes,
    });
    expect(right.status, right.body.toString()).toBe(200);
    expect(fs.readFileSync(target, 'utf8')).toBe(bytes.toString());
    expect(fs.statSync(target).mode & 0o777).toBe(0o600);
    fs.rmSync(target);
  });

  it('answers a missing file 404, a directory 409, a missing directory 404 and a relative path 400', async () => {
    const missing = await request('GET', filesUrl(uuid, path.join(dir, 'missing.txt')));
    expect(missing.status).toBe(404);
    expect(errorOf(missing).message).toContain('no such file');
    const directory = await request('GET', filesUrl(uuid, dir));
    expect(directory.status).toBe(409);
    expect(errorOf(directory).message).toContain('is a directory');
    const overDirectory = await request('PUT', filesUrl(uuid, dir), { body: Buffer.from('x') });
    expect(overDirectory.status).toBe(409);
    const noDirectory = await request('PUT', filesUrl(uuid, path.join(dir, 'no', 'such.txt')), {
      body: Buffer.from('x'),
    });
    expect(noDirectory.status).toBe(404);
    expect(errorOf(noDirectory).message).toContain('create it first');
    const relative = await request('GET', filesUrl(uuid, 'etc/hostname'));
    expect(relative.status).toBe(400);
    expect(errorOf(relative).message).toContain('absolute path');
  });

  it('finds a device by a uuid prefix that is all digits, and by its id', async () => {
    const { fleetId } = await api('GET', `/api/v1/devices/${uuid}`);
    const numeric = await api('POST', '/api/v1/devices', {
      fleetId,
      name: 'digits-first',
      uuid: `45099294${'ab'.repeat(12)}`,
    });
    // Found, and offline (no agent): 503, not "no device".
    for (const named of ['45099294', String(numeric.id)]) {
      const answer = await request('GET', filesUrl(named, '/etc/hostname'));
      expect(answer.status, named).toBe(503);
      expect(errorOf(answer).message).toContain('offline');
    }
    const unknown = await request('GET', filesUrl('999999999', '/etc/hostname'));
    expect(unknown.status).toBe(404);
  });

  it('leaves no file, not even a part, when the connection is cut mid-upload', async () => {
    const target = path.join(dir, 'cut.bin');
    const bytes = randomBytes(4 * MiB);
    const cut = request('PUT', filesUrl(uuid, target), { body: bytes, cutAfter: 2 * MiB });
    // The device was writing its temporary file when the connection went.
    await waitFor(() => partFiles().length > 0 || undefined, 5000, 'the temporary file');
    await cut;
    await waitFor(() => partFiles().length === 0 || undefined, 5000, 'the temporary file to be removed');
    expect(fs.existsSync(target)).toBe(false);
  });

  it('refuses a viewer (403) and a user of another organization (404) at both endpoints', async () => {
    const target = path.join(dir, 'secret.txt');
    fs.writeFileSync(target, 'secret');
    const attempt = path.join(dir, 'planted.txt');
    for (const [token, status] of [
      [viewerToken, 403],
      [betaToken, 404],
    ] as const) {
      const get = await request('GET', filesUrl(uuid, target), { token });
      expect(get.status).toBe(status);
      expect(get.body.toString()).not.toContain('secret');
      const put = await request('PUT', filesUrl(uuid, attempt), { token, body: Buffer.from('planted') });
      expect(put.status).toBe(status);
    }
    expect(fs.existsSync(attempt)).toBe(false);
    fs.rmSync(target);
  });

  it('is refused by an agent whose exec service is off, saying so', async () => {
    const target = path.join(dir, 'locked.txt');
    fs.writeFileSync(target, 'x');
    const get = await request('GET', filesUrl('locked-device', target));
    expect(get.status).toBe(403);
    expect(errorOf(get).message).toContain('exec service is off');
    const put = await request('PUT', filesUrl('locked-device', path.join(dir, 'new.txt')), {
      body: Buffer.from('x'),
    });
    expect(put.status).toBe(403);
    expect(fs.existsSync(path.join(dir, 'new.txt'))).toBe(false);
  });
});
