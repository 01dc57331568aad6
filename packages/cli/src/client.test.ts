import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, ApiError, apiPath } from './client.ts';
import { CliError } from './errors.ts';

interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A fake API on a real port: answers whatever `respond` says and remembers the last request. */
let respond: (response: ServerResponse) => void = (response) => response.end();
let seen: SeenRequest | undefined;
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      seen = {
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks).toString(),
      };
      respond(response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function json(status: number, body: unknown) {
  return (response: ServerResponse) => {
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
}

describe('ApiClient.request', () => {
  it('sends the token, the query without unset values, and JSON bodies under /api/v1', async () => {
    respond = json(201, { id: 7 });
    const client = new ApiClient({ server: `${base}/`, token: 'fgs_abc' });
    const answer = await client.request('POST', '/devices', {
      query: { fleetId: 3, q: undefined, tag: 'site=paris' },
      body: { name: 'kiosk' },
    });
    expect(answer).toEqual({ id: 7 });
    expect(seen?.method).toBe('POST');
    expect(seen?.url).toBe('/api/v1/devices?fleetId=3&tag=site%3Dparis');
    expect(seen?.headers.authorization).toBe('Bearer fgs_abc');
    expect(seen?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(seen?.body ?? '')).toEqual({ name: 'kiosk' });
  });

  it('sends no content type and no Authorization when there is no body and no token', async () => {
    respond = (response) => response.writeHead(204).end();
    const answer = await new ApiClient({ server: base }).request('DELETE', '/devices/1');
    expect(answer).toBeUndefined();
    expect(seen?.headers['content-type']).toBeUndefined();
    expect(seen?.headers.authorization).toBeUndefined();
  });

  it("throws the server's error message, code and details on a 4xx", async () => {
    const details = [{ where: 'body', path: 'name', message: 'too long' }];
    respond = json(400, {
      error: { code: 'validation_failed', message: 'invalid request body name', details },
    });
    const failure = await new ApiClient({ server: base }).request('POST', '/fleets').catch((error) => error);
    expect(failure).toBeInstanceOf(ApiError);
    expect(failure).toMatchObject({
      status: 400,
      code: 'validation_failed',
      message: 'invalid request body name',
      details,
      path: '/fleets',
    });
  });

  it('names the HTTP status when an error answer is not the API error shape', async () => {
    respond = (response) => response.writeHead(502, 'Bad Gateway').end('<html>proxy</html>');
    await expect(new ApiClient({ server: base }).request('GET', '/me')).rejects.toThrow(
      'HTTP 502 Bad Gateway',
    );
  });

  it('asks whether `fleetgate serve` runs when the connection is refused', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const request = new ApiClient({ server: `http://127.0.0.1:${port}` }).request('GET', '/me');
    await expect(request).rejects.toThrow(CliError);
    await expect(request).rejects.toThrow(
      `cannot reach http://127.0.0.1:${port}: is \`fleetgate serve\` running?`,
    );
  });

  it('gives up on a server that does not answer', async () => {
    respond = () => {};
    const client = new ApiClient({ server: base, timeoutMs: 100 });
    await expect(client.request('GET', '/me')).rejects.toThrow(`${base} did not answer within 0.1 s`);
  });
});

describe('apiPath', () => {
  it('encodes every interpolated value, so none can change the path', () => {
    expect(apiPath`/devices/${42}/tags/${'a/b?c=d'}`).toBe('/devices/42/tags/a%2Fb%3Fc%3Dd');
  });
});
