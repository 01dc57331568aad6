import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { type RunningServer, startServer } from '../src/index.ts';
import type { Config } from '../src/infra/config/index.ts';
import { dropPostgresSchema } from '../src/infra/db/index.ts';
import { initTls } from '../src/infra/tls/index.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from './harness.ts';

export interface ListeningServer {
  /** `https://127.0.0.1:PORT` with `tls`, else `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  /** The CA that signed the server certificate (`<dataDir>/tls/ca.crt` with `tls`, else `options.caFile`). */
  caFile?: string;
  dataDir: string;
  /** Session token of ADMIN_EMAIL, the owner of the default organization. */
  adminToken: string;
  config: Config;
  database: RunningServer['database'];
  /** The running server as `startServer` answered it. */
  server: RunningServer;
  /** Stops the server, drops its PostgreSQL schema and removes its data directory. */
  close(): Promise<void>;
}

export interface ListeningOptions {
  /** Serve HTTPS with a fresh CA and a certificate for `localhost` (and 127.0.0.1, ::1). Default false. */
  tls?: boolean;
  /** The CA to trust when `flags` name other certificate files (`tlsCert`, `tlsKey`). */
  caFile?: string;
  /** More `serve` settings (configuration keys, as `fleetgate serve` flags set them). */
  flags?: Record<string, string | number>;
}

/**
 * The real `fleetgate serve` (`startServer`) on 127.0.0.1, a free port, its own temporary data directory and,
 * with DATABASE_URL, its own PostgreSQL schema; signed in as the admin of test/harness.ts. For tests with real
 * clients (curl, mender-client…) that need a socket rather than `app.inject`.
 */
export async function startListeningServer(options: ListeningOptions = {}): Promise<ListeningServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-listen-'));
  const schema = `fg_test_${randomBytes(6).toString('hex')}`;
  if (options.tls) await initTls({ dataDir, hosts: ['localhost'] });
  let server: RunningServer;
  try {
    server = await startServer({
      env: process.env,
      print: () => {},
      flags: {
        dataDir,
        adminEmail: ADMIN_EMAIL,
        adminPassword: ADMIN_PASSWORD,
        logLevel: process.env.FLEETGATE_TEST_LOG_LEVEL ?? 'silent',
        httpPort: 0,
        // The other listeners too: parallel test files must never compete for a port.
        proxyPort: 0,
        sshPort: 0,
        listen: '127.0.0.1',
        dbSchema: process.env.DATABASE_URL ? schema : 'public',
        ...options.flags,
      },
    });
  } catch (error) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const caFile = options.caFile ?? server.tls?.caFile;
  const cleanUp = async () => {
    await server.close();
    if (server.config.databaseUrl)
      await dropPostgresSchema(server.config.databaseUrl, server.config.dbSchema);
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  let adminToken: string;
  try {
    const answer = await requestJson(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
      ...(caFile ? { ca: fs.readFileSync(caFile) } : {}),
    });
    if (answer.status !== 200) throw new Error(`admin login failed: ${answer.status} ${answer.text}`);
    adminToken = answer.body.token;
  } catch (error) {
    await cleanUp();
    throw error;
  }
  return {
    url: server.url,
    ...(caFile ? { caFile } : {}),
    dataDir,
    adminToken,
    config: server.config,
    database: server.database,
    server,
    close: cleanUp,
  };
}

export interface JsonAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and assert on them.
  body: any;
}

/**
 * One HTTP(S) request over a new connection (no keep-alive pool, so each request sees the current
 * certificate), trusting `ca` for HTTPS (node's fetch cannot take a CA without
 * undici's Agent). A JSON answer is parsed into `body`.
 */
export function requestJson(
  url: string,
  options: {
    method?: string;
    body?: unknown;
    token?: string;
    ca?: string | Buffer;
    headers?: Record<string, string>;
  } = {},
): Promise<JsonAnswer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = {
    ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
    ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const callback = (response: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        if ((response.headers['content-type'] ?? '').includes('json') && text) body = JSON.parse(text);
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text, body });
      });
    };
    const request = url.startsWith('https:')
      ? https.request(
          url,
          {
            method: options.method ?? 'GET',
            headers,
            agent: false,
            ...(options.ca ? { ca: options.ca } : {}),
          },
          callback,
        )
      : http.request(url, { method: options.method ?? 'GET', headers, agent: false }, callback);
    request.on('error', reject);
    request.end(payload);
  });
}
