/**
 * Device web pages when fleetgate serves HTTPS: the link is `https://<port>-<uuid>.localhost:<port>/…` and the
 * device origin's cookie is `Secure`. No agent is needed to enter a grant; the page then says the device is offline.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';

describe('device web pages over HTTPS', () => {
  let server: ListeningServer;
  const uuid = randomBytes(16).toString('hex');

  /** A request on the device origin, to 127.0.0.1 (the certificate is fleetgate's for localhost: not checked). */
  const onOrigin = (host: string, path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: Record<string, unknown>; text: string }>((resolve, reject) => {
      const url = new URL(server.url);
      const request = https.request(
        { host: '127.0.0.1', port: url.port, path, headers: { host, ...headers }, rejectUnauthorized: false },
        (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, headers: response.headers, text }),
          );
        },
      );
      request.on('error', reject);
      request.end();
    });

  beforeAll(async () => {
    server = await startListeningServer({ tls: true });
    const ca = server.caFile ? { ca: fs.readFileSync(server.caFile) } : {};
    const api = async (method: string, url: string, body?: unknown) =>
      (await requestJson(`${server.url}${url}`, { method, body, token: server.adminToken, ...ca })).body;
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'tls-web',
      defaultDeviceType: 'generic-amd64',
    });
    await api('POST', '/api/v1/devices', { fleetId: fleet.id, uuid });
    await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [80] });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
  });

  it('gives an https link, sets a Secure host-only cookie, and says when the device is offline', async () => {
    const ca = server.caFile ? { ca: fs.readFileSync(server.caFile) } : {};
    const answer = await requestJson(`${server.url}/api/v1/devices/${uuid}/web-sessions`, {
      method: 'POST',
      body: { port: 80 },
      token: server.adminToken,
      ...ca,
    });
    expect(answer.status, answer.text).toBe(201);
    const link = new URL(answer.body.url);
    expect(link.protocol).toBe('https:');
    expect(link.host).toBe(`80-${uuid}.localhost:${new URL(server.url).port}`);

    const entered = await onOrigin(link.host, `${link.pathname}${link.search}`);
    expect(entered.status).toBe(303);
    const setCookie = (entered.headers['set-cookie'] as string[])[0]!;
    expect(setCookie).toMatch(/; HttpOnly; SameSite=Lax; Max-Age=\d+; Secure$/);
    expect(setCookie).not.toMatch(/Domain/i);

    const page = await onOrigin(link.host, '/', { cookie: setCookie.split(';')[0]! });
    expect(page.status).toBe(503);
    expect(page.text).toContain('offline');
  });
});
