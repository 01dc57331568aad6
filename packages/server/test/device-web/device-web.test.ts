/**
 * Device web pages with real parts: a real fleetgate server, a real agent (in-process, over real sockets), and
 * the device's own services on 127.0.0.1: `python3 -m http.server`, a small app that sets cookies, redirects and
 * echoes what it was sent, a WebSocket echo (`ws`), and an HTTPS server with a self-signed certificate. Node's
 * fetch does not resolve `*.localhost`, so requests go to 127.0.0.1 with the device origin in `Host`, as a
 * browser would send it. SQLite, and PostgreSQL with DATABASE_URL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs, waitFor } from '@fleetgate/agent/test/helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { initTls, tlsFilesOf } from '../../src/infra/tls/index.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('device web pages', () => {
  let server: ListeningServer;
  let agent: Agent;
  let uuid: string;
  let serverPort: number;
  let operatorToken: string;
  let viewerToken: string;
  let betaToken: string;
  let python: ChildProcess;
  const siteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-device-site-'));
  const ports = { python: 0, app: 0, ws: 0, https: 0, closed: 0 };
  const closers: (() => void)[] = [];
  /** What the device app saw of the last request. */
  let appSaw: http.IncomingHttpHeaders = {};

  const api = async (method: string, url: string, body?: unknown, token = server.adminToken) => {
    const answer = await requestJson(`${server.url}${url}`, { method, body, token });
    if (answer.status >= 300)
      throw new Error(`${method} ${url}: ${answer.status} ${answer.text.slice(0, 300)}`);
    return answer.body;
  };
  const login = async (email: string, password: string) =>
    (await api('POST', '/api/v1/auth/login', { email, password }, '')).token as string;

  /** A request as the browser sends it to a device origin: to 127.0.0.1, with the origin's host in `Host`. */
  const onOrigin = (
    host: string,
    pathAndQuery: string,
    options: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: '127.0.0.1',
          port: serverPort,
          method: options.method ?? 'GET',
          path: pathAndQuery,
          headers: { host, ...options.headers },
          agent: false,
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, headers: response.headers, text }),
          );
        },
      );
      request.on('error', reject);
      request.end(options.body);
    });

  /** Asks for a grant; answers the link's host and path. */
  const grant = async (port: number, token = server.adminToken, tls = false) => {
    const answer = await api('POST', `/api/v1/devices/${uuid}/web-sessions`, { port, https: tls }, token);
    const url = new URL(answer.url);
    return { ...answer, host: url.host, enter: `${url.pathname}${url.search}` };
  };
  /** Enters a fresh grant; answers the device origin's host and the cookie header to send there. */
  const enter = async (port: number, token = server.adminToken, tls = false) => {
    const link = await grant(port, token, tls);
    const entered = await onOrigin(link.host, link.enter);
    expect(entered.status, entered.text).toBe(303);
    const setCookie = entered.headers['set-cookie']?.[0] ?? '';
    return { host: link.host, cookie: setCookie.split(';')[0]!, setCookie };
  };

  beforeAll(async () => {
    server = await startListeningServer({ flags: { presenceFlushMs: 50 } });
    serverPort = Number(new URL(server.url).port);
    for (const name of Object.keys(ports) as (keyof typeof ports)[]) ports[name] = await freePort();

    // The device's services.
    fs.writeFileSync(path.join(siteDir, 'hello.txt'), 'hello from the device\n');
    python = spawn('/usr/bin/python3', ['-m', 'http.server', String(ports.python), '--bind', '127.0.0.1'], {
      cwd: siteDir,
      stdio: 'ignore',
    });
    const app = http.createServer((request, response) => {
      appSaw = request.headers;
      if (request.url === '/login') {
        response.writeHead(302, {
          Location: `http://localhost:${ports.app}/home?from=login`,
          'Set-Cookie': ['app_session=s3cr3t; Path=/; HttpOnly', 'theme=dark; Domain=localhost; Path=/'],
        });
        response.end();
        return;
      }
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.end(
          JSON.stringify({ method: request.method, url: request.url, body, headers: request.headers }),
        );
      });
    });
    await new Promise<void>((resolve) => app.listen(ports.app, '127.0.0.1', resolve));
    closers.push(() => app.close());
    const wss = new WebSocketServer({ port: ports.ws, host: '127.0.0.1' });
    wss.on('connection', (ws, request) => {
      ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo: ${data}`));
      ws.send(`hello ${request.url}`);
    });
    closers.push(() => wss.close());
    const tlsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-device-tls-'));
    await initTls({ dataDir: tlsDir, hosts: ['localhost'] });
    const tlsFiles = tlsFilesOf(tlsDir);
    const secure = https.createServer(
      { cert: fs.readFileSync(tlsFiles.serverCert), key: fs.readFileSync(tlsFiles.serverKey) },
      (request, response) => {
        response.writeHead(200, { 'Content-Type': 'text/plain' });
        response.end(`secure hello ${request.url}`);
      },
    );
    await new Promise<void>((resolve) => secure.listen(ports.https, '127.0.0.1', resolve));
    closers.push(
      () => secure.close(),
      () => fs.rmSync(tlsDir, { recursive: true, force: true }),
    );

    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'web-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'web' });
    ({ agent, uuid } = await enrollAgent(
      server.url,
      key,
      { agentVersion: '0.1.0-web', allowedPorts: Object.values(ports) },
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    ));
    await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, {
      ports: [ports.python, ports.app, ports.ws, ports.https, ports.closed],
    });
    const operator = await api('POST', '/api/v1/orgs/1/members', {
      email: 'op@example.test',
      role: 'operator',
    });
    operatorToken = await login('op@example.test', operator.password);
    const viewer = await api('POST', '/api/v1/orgs/1/members', {
      email: 'viewer@example.test',
      role: 'viewer',
    });
    viewerToken = await login('viewer@example.test', viewer.password);
    await api('POST', '/api/v1/users', { email: 'beta@example.test', password: 'beta owner password' });
    betaToken = await login('beta@example.test', 'beta owner password');
    await api('POST', '/api/v1/orgs', { name: 'Beta' }, betaToken);
    // python's http.server answers once it listens.
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const socket = net.connect(ports.python, '127.0.0.1', () => {
            socket.destroy();
            resolve(true);
          });
          socket.on('error', () => resolve(false));
        }),
      10_000,
      'python3 -m http.server',
    );
  }, 60_000);

  afterAll(async () => {
    python?.kill();
    for (const close of closers) close();
    await agent?.stop();
    await server?.close();
    fs.rmSync(siteDir, { recursive: true, force: true });
    removeTemporaryDirs();
  });

  it("opens a device's python3 -m http.server page on its own origin and reads a file from it", async () => {
    const link = await grant(ports.python, operatorToken);
    expect(link.origin).toBe(`http://${ports.python}-${uuid}.localhost:${serverPort}`);
    expect(link.url).toMatch(new RegExp(`^${link.origin}/\\.fleetgate/enter\\?grant=fgw_[\\w-]{43}$`));
    expect(link.expiresAt - Date.now()).toBeGreaterThan(50_000);

    const entered = await onOrigin(link.host, link.enter);
    expect(entered.status).toBe(303);
    expect(entered.headers.location).toBe('/');
    const setCookie = entered.headers['set-cookie']?.[0] ?? '';
    expect(setCookie).toMatch(
      /^fleetgate_device_web=[\w-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+$/,
    );
    expect(setCookie).not.toMatch(/Domain/i);
    const cookie = setCookie.split(';')[0]!;

    const listing = await onOrigin(link.host, '/', { headers: { cookie } });
    expect(listing.status).toBe(200);
    expect(listing.text).toContain('hello.txt');
    const file = await onOrigin(link.host, '/hello.txt', { headers: { cookie } });
    expect(file.text).toBe('hello from the device\n');
    const missing = await onOrigin(link.host, '/nothing-here', { headers: { cookie } });
    expect(missing.status).toBe(404);
    expect(missing.text).toMatch(/File not found/);
  });

  it('refuses a used grant the second time, an unknown one, and a grant on another port’s origin', async () => {
    const link = await grant(ports.python);
    expect((await onOrigin(link.host, link.enter)).status).toBe(303);
    const again = await onOrigin(link.host, link.enter);
    expect(again.status).toBe(403);
    expect(again.headers['set-cookie']).toBeUndefined();
    expect(again.text).toContain('already used or has expired');
    expect(again.text).toContain("Open the page again from the device's page in fleetgate");

    expect((await onOrigin(link.host, `/.fleetgate/enter?grant=fgw_${'x'.repeat(43)}`)).status).toBe(403);
    expect((await onOrigin(link.host, '/.fleetgate/enter')).status).toBe(403);

    // Raced: of several tabs entering the same link at once, one gets in.
    const raced = await grant(ports.python);
    const answers = await Promise.all(Array.from({ length: 6 }, () => onOrigin(raced.host, raced.enter)));
    expect(answers.map((a) => a.status).sort()).toEqual([303, 403, 403, 403, 403, 403]);

    const other = await grant(ports.python);
    const elsewhere = `${ports.app}-${uuid}.localhost:${serverPort}`;
    expect((await onOrigin(elsewhere, other.enter)).status).toBe(403);
    // Refused there, it still works once where it was made for.
    expect((await onOrigin(other.host, other.enter)).status).toBe(303);
  });

  it("never answers as fleetgate on a device origin: /api/v1/me is the device's path, and no cookie is a 401 page", async () => {
    const { host, cookie } = await enter(ports.python);
    const me = await onOrigin(host, '/api/v1/me', {
      headers: { cookie, authorization: `Bearer ${server.adminToken}` },
    });
    expect(me.status).toBe(404);
    expect(me.text).toMatch(/File not found/);
    expect(me.text).not.toContain('admin@');

    const anonymous = await onOrigin(host, '/api/v1/me', {
      headers: { authorization: `Bearer ${server.adminToken}` },
    });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['content-type']).toMatch(/text\/html/);
    expect(anonymous.text).toContain("go to the device's page in fleetgate");

    // A cookie of one origin is nothing on another: each (device, port) is an origin of its own.
    const other = await onOrigin(`${ports.app}-${uuid}.localhost:${serverPort}`, '/', {
      headers: { cookie },
    });
    expect(other.status).toBe(401);

    const malformed = await onOrigin(`99999-${uuid}.localhost:${serverPort}`, '/');
    expect(malformed.status).toBe(404);
    expect(malformed.text).toContain('names no device page');
  });

  it("passes the device app's paths, methods, bodies, cookies and redirects through, and keeps fleetgate's cookie from it", async () => {
    const { host, cookie } = await enter(ports.app);
    const login = await onOrigin(host, '/login', {
      headers: { cookie: `${cookie}; fleetgate_session=fgs_nope` },
    });
    expect(login.status).toBe(302);
    // The app's absolute redirect to its own localhost lands on the device origin.
    expect(login.headers.location).toBe(`http://${host}/home?from=login`);
    expect(login.headers['set-cookie']).toEqual([
      'app_session=s3cr3t; Path=/; HttpOnly',
      'theme=dark; Path=/',
    ]);
    // Neither of fleetgate's cookies reaches the device; its own do.
    expect(appSaw.cookie).toBeUndefined();

    const posted = await onOrigin(host, '/form/submit?x=1&y=%20two', {
      method: 'POST',
      headers: {
        cookie: `app_session=s3cr3t; ${cookie}`,
        'content-type': 'text/plain',
        origin: `http://${host}`,
      },
      body: 'field=value',
    });
    expect(posted.status).toBe(200);
    const echoed = JSON.parse(posted.text);
    expect(echoed).toMatchObject({ method: 'POST', url: '/form/submit?x=1&y=%20two', body: 'field=value' });
    expect(echoed.headers.cookie).toBe('app_session=s3cr3t');
    expect(echoed.headers.host).toBe(`localhost:${ports.app}`);
    expect(echoed.headers['x-forwarded-host']).toBe(host);

    // Another page (here: another device's origin) cannot post to this one with the person's cookie.
    const forged = await onOrigin(host, '/form/submit', {
      method: 'POST',
      headers: { cookie, origin: `http://${ports.python}-${uuid}.localhost:${serverPort}` },
      body: 'x',
    });
    expect(forged.status).toBe(403);
    expect(forged.text).toContain('from another page');
    // Nor load it as a script or image (no Origin there, but the browser says who asked).
    const embedded = await onOrigin(host, '/data.js', {
      headers: {
        cookie,
        'sec-fetch-site': 'same-site',
        'sec-fetch-mode': 'no-cors',
        'sec-fetch-dest': 'script',
      },
    });
    expect(embedded.status).toBe(403);
    // A link from elsewhere (a navigation) opens it.
    const linked = await onOrigin(host, '/data.js', {
      headers: { cookie, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' },
    });
    expect(linked.status).toBe(200);
  });

  it('relays WebSocket upgrades to the device both ways', async () => {
    const { host, cookie } = await enter(ports.ws);
    const ws = new WebSocket(`ws://127.0.0.1:${serverPort}/chat?room=1`, {
      headers: { host, cookie, origin: `http://${host}` },
    });
    const messages: string[] = [];
    ws.on('message', (data) => messages.push(data.toString()));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send('ping 42');
    await waitFor(() => messages.length >= 2, 5000, 'the echo');
    expect(messages).toEqual(['hello /chat?room=1', 'echo: ping 42']);
    ws.close();

    const refused = new WebSocket(`ws://127.0.0.1:${serverPort}/chat`, {
      headers: { host, origin: `http://${host}` },
    });
    const status = await new Promise<number | undefined>((resolve) => {
      refused.once('unexpected-response', (_request, response) => resolve(response.statusCode));
      refused.once('open', () => resolve(undefined));
      refused.once('error', () => resolve(-1));
    });
    expect(status).toBe(401);
  });

  it('reaches an HTTPS service of the device with a self-signed certificate', async () => {
    const { host, cookie } = await enter(ports.https, server.adminToken, true);
    expect(host).toBe(`${ports.https}s-${uuid}.localhost:${serverPort}`);
    const page = await onOrigin(host, '/status?q=1', { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.text).toBe('secure hello /status?q=1');
  });

  it('refuses viewers, other organizations, ports off the allow-list, and tells when nothing listens', async () => {
    const ask = (token: string, port: number) =>
      requestJson(`${server.url}/api/v1/devices/${uuid}/web-sessions`, {
        method: 'POST',
        token,
        body: { port },
      });
    expect((await ask(viewerToken, ports.python)).status).toBe(403);
    expect((await ask(betaToken, ports.python)).status).toBe(404);
    const offList = await ask(operatorToken, 1);
    expect(offList.status).toBe(403);
    expect(offList.body.error.message).toContain("not on the device's port allow-list");

    const { host, cookie } = await enter(ports.closed);
    const nothing = await onOrigin(host, '/', { headers: { cookie } });
    expect(nothing.status).toBe(503);
    expect(nothing.text).toContain('refused');

    const audit = await api('GET', '/api/v1/audit?action=device.web.grant&limit=100');
    expect(audit.items.some((e: { outcome: string }) => e.outcome === 'denied')).toBe(true);
    expect(audit.items.some((e: { outcome: string }) => e.outcome === 'success')).toBe(true);
  });

  it('lists each connection as a web session, and ends the page when the person signs out', async () => {
    const { host, cookie } = await enter(ports.python, operatorToken);
    expect((await onOrigin(host, '/hello.txt', { headers: { cookie } })).status).toBe(200);
    const sessions = await api('GET', `/api/v1/sessions?surface=web&device=${uuid}`);
    expect(sessions.items.length).toBeGreaterThan(0);
    expect(sessions.items[0]).toMatchObject({ surface: 'web', port: ports.python, device: { uuid } });

    await api('POST', '/api/v1/auth/logout', undefined, operatorToken);
    const after = await onOrigin(host, '/hello.txt', { headers: { cookie } });
    expect(after.status).toBe(401);
    expect(after.text).toContain('has ended');
  });

  it('ends the page when an administrator ends one of its sessions: the browser cannot simply reconnect', async () => {
    // The device app keeps its connections alive (python's http.server closes each after one answer).
    const { host, cookie } = await enter(ports.app);
    expect((await onOrigin(host, '/status', { headers: { cookie } })).status).toBe(200);
    const live = await api('GET', `/api/v1/sessions?surface=web&device=${uuid}&live=true`);
    // The newest: earlier tests' pages to this port may still hold kept-alive connections.
    const mine = live.items
      .filter((s: { port: number }) => s.port === ports.app)
      .sort((a: { startedAt: string }, b: { startedAt: string }) =>
        b.startedAt.localeCompare(a.startedAt),
      )[0];
    expect(mine, JSON.stringify(live)).toBeDefined();
    await api('POST', `/api/v1/sessions/${mine.id}/terminate`);
    const after = await waitFor(
      async () => {
        const answer = await onOrigin(host, '/status', { headers: { cookie } });
        return answer.status === 200 ? undefined : answer;
      },
      5000,
      'the page to end',
    );
    expect(after?.status).toBe(401);
    expect(after?.text).toContain('has ended');
  });

  it('answers hostile input on a device origin with a clear 4xx, never a 5xx or fleetgate itself', async () => {
    const hosts = [
      `0-${uuid}.localhost:${serverPort}`,
      `65536-${uuid}.localhost:${serverPort}`,
      `80-${uuid.slice(1)}.localhost:${serverPort}`,
      `80-${'g'.repeat(32)}.localhost:${serverPort}`,
      `80s-${uuid}x.localhost:${serverPort}`,
    ];
    for (const host of hosts) {
      const answer = await onOrigin(host, '/api/v1/me', {
        headers: { authorization: `Bearer ${server.adminToken}` },
      });
      expect(answer.status, host).toBe(404);
      expect(answer.text).toContain('names no device page');
    }
    const host = `${ports.python}-${uuid}.localhost:${serverPort}`;
    const longGrant = await onOrigin(host, `/.fleetgate/enter?grant=${'a'.repeat(8000)}`);
    expect(longGrant.status).toBe(403);
    const posted = await onOrigin(host, '/.fleetgate/enter?grant=x', { method: 'POST', body: 'x' });
    expect(posted.status).toBe(400);
    for (const cookie of [
      'fleetgate_device_web=',
      `fleetgate_device_web=${'%'.repeat(3000)}`,
      'fleetgate_device_web=a=b=c; ;;=',
    ]) {
      const answer = await onOrigin(host, '/', { headers: { cookie } });
      expect(answer.status, cookie.slice(0, 40)).toBe(401);
    }
    // A device uuid of nobody's, well formed.
    const nobody = await onOrigin(`80-${'0'.repeat(32)}.localhost:${serverPort}`, '/');
    expect(nobody.status).toBe(401);
    // A WebSocket upgrade to a malformed device host is refused before anything else.
    const refused = new WebSocket(`ws://127.0.0.1:${serverPort}/`, { headers: { host: hosts[0]! } });
    const status = await new Promise<number | undefined>((resolve) => {
      refused.once('unexpected-response', (_request, response) => resolve(response.statusCode));
      refused.once('open', () => resolve(undefined));
      refused.once('error', () => resolve(-1));
    });
    expect(status).toBe(404);
    // fleetgate itself still answers on its own host.
    expect((await requestJson(`${server.url}/api/v1/me`, { token: server.adminToken })).status).toBe(200);
  });

  it('says the device is offline when its agent is gone', async () => {
    const { host, cookie } = await enter(ports.python);
    await agent.stop();
    await waitFor(async () => (await api('GET', `/api/v1/devices/${uuid}`)).status === 'offline', 10_000);
    const offline = await onOrigin(host, '/', { headers: { cookie } });
    expect(offline.status).toBe(503);
    expect(offline.text).toContain('offline');
  });
});
