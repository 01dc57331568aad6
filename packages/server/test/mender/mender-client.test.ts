import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { memoryIo, runCli } from '@fleetgate/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedAuthRequest, testKey } from '../auth-sets/signing.ts';
import { dialectUnderTest } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import {
  canRunMender,
  createMenderDevice,
  forgetMenderToken,
  type MenderDevice,
  runMender,
  startMenderDaemon,
  whyMenderCannotRun,
} from './mender-device.ts';

/** The real Debian mender-client 3.4.0 against fleetgate over HTTPS (how it runs: ./mender-device.ts). */

if (!canRunMender) console.warn(`SKIPPED mender-client tests: ${whyMenderCannotRun}`);

// CI (.ci/run sets CI=1) installs the client and runs as root: there, a missing client is a failure.
describe.runIf(!canRunMender && process.env.CI)('mender-client prerequisites', () => {
  it('are present on CI', () => {
    expect.fail(`the real-client tests cannot run: ${whyMenderCannotRun}`);
  });
});

describe.skipIf(!canRunMender)(`mender-client 3.4.0 against fleetgate (${dialectUnderTest})`, () => {
  let server: ListeningServer;
  let ca: Buffer;
  let fleetId: number;
  let work: string;
  let port: string;
  let deviceCount = 0;

  /** HTTPS `fetch` for the CLI trusting the test CA (Node's fetch cannot take a CA). */
  const caFetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = input.toString();
    const body = init?.body === undefined || init.body === null ? undefined : String(init.body);
    return new Promise<Response>((resolve, reject) => {
      const request = https.request(
        url,
        { method: init?.method ?? 'GET', headers: init?.headers as Record<string, string>, ca, agent: false },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (c: Buffer) => chunks.push(c));
          response.on('error', reject);
          response.on('end', () => {
            const headers = new Headers();
            for (const [k, v] of Object.entries(response.headers))
              if (typeof v === 'string') headers.set(k, v);
            const status = response.statusCode ?? 500;
            resolve(new Response(status === 204 ? null : Buffer.concat(chunks), { status, headers }));
          });
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }) as typeof fetch;

  const cli = async (...args: string[]) => {
    const mem = memoryIo({
      env: { FLEETGATE_SERVER: server.url, FLEETGATE_TOKEN: server.adminToken, FLEETGATE_CONFIG_DIR: work },
      fetch: caFetch,
    });
    const code = await runCli(args, mem.io);
    return { code, stdout: mem.stdout(), stderr: mem.stderr() };
  };
  const api = (method: string, url: string, body?: unknown) =>
    requestJson(`${server.url}${url}`, { method, token: server.adminToken, ca, ...(body ? { body } : {}) });

  const newDevice = (identityLines: string[], privateKeyPem?: string): MenderDevice =>
    createMenderDevice({
      dir: path.join(work, `device-${++deviceCount}`),
      identityLines,
      serverUrl: `https://localhost:${port}`,
      caFile: server.caFile!,
      inventoryId: deviceCount,
      ...(privateKeyPem ? { privateKeyPem } : {}),
    });
  const mender = runMender;
  const forgetToken = forgetMenderToken;

  const authSets = async (query: string) => {
    const answer = await api('GET', `/api/v1/auth-sets?limit=500&${query}`);
    expect(answer.status).toBe(200);
    return answer.body.items as {
      id: number;
      identity: Record<string, string>;
      status: string;
      deviceId: number | null;
      deviceUuid: string | null;
    }[];
  };

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-mender-'));
    server = await startListeningServer({ tls: true });
    ca = fs.readFileSync(server.caFile!);
    port = new URL(server.url).port;
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'mender-fleet',
      defaultDeviceType: 'qemux86-64',
    });
    expect(fleet.status).toBe(201);
    fleetId = fleet.body.id;
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('unknown device → pending; accepted through the CLI → bootstrap succeeds → inventory on the device', async () => {
    const device = newDevice(['mac=02:fe:00:00:00:01']);
    const first = await mender(device, 'bootstrap');
    expect(first.code, first.output).not.toBe(0);
    expect(fs.existsSync(path.join(device.dataDir, 'mender-agent.pem'))).toBe(true);

    const pending = await cli('devices', 'pending', '--json');
    expect(pending.code, pending.stderr).toBe(0);
    const set = JSON.parse(pending.stdout).items.find(
      (s: { identity: Record<string, string> }) => s.identity.mac === '02:fe:00:00:00:01',
    );
    expect(set).toMatchObject({ status: 'pending', keyType: 'rsa' });

    const accepted = await cli('devices', 'accept', String(set.id), '--fleet', String(fleetId));
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(accepted.stdout).toMatch(/accepted/);

    const second = await mender(device, 'bootstrap');
    expect(second.code, second.output).toBe(0);

    const [acceptedSet] = await authSets('status=accepted').then((all) => all.filter((s) => s.id === set.id));
    expect(acceptedSet?.deviceId).toBeTruthy();
    // The daemon sends its inventory soon after it starts; stop it once the attributes are on the device.
    const { child } = startMenderDaemon(device, 40_000);
    let attributes: Record<string, unknown> | null = null;
    try {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const shown = await api('GET', `/api/v1/devices/${acceptedSet!.deviceId}`);
        attributes = shown.body.attributes;
        if (attributes?.artifact_name) break;
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      child.kill('SIGTERM');
    }
    expect(attributes).toMatchObject({
      artifact_name: expect.stringMatching(/^fleetgate-test-/),
      device_type: 'qemux86-64',
      tags: ['a', 'b'],
    });
    expect(String(attributes?.mender_client_version)).toMatch(/^3\.4\.0/);

    // Decommissioned through the Mender management API: the same device asking again gets 401.
    const uuid = acceptedSet!.deviceUuid!;
    const gone = await api('DELETE', `/api/management/v2/devauth/devices/${uuid}`);
    expect(gone.status).toBe(204);
    forgetToken(device);
    const after = await mender(device, 'bootstrap');
    expect(after.code, after.output).not.toBe(0);
    expect(after.output).toMatch(/decommissioned|401|rejected/);
  }, 120_000);

  it('accepts keys preauthorized with keygen + preauth (Ed25519, ECDSA P-256, RSA) on the first request', async () => {
    for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) {
      const out = path.join(work, `keys-${type}`);
      const made = await cli('keygen', '--count', '1', '--prefix', `P${type}-`, '--type', type, '--out', out);
      expect(made.code, made.stderr).toBe(0);
      const serial = `P${type}-0001`;
      const keyFile = path.join(out, `${serial}.key`);
      expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
      const pre = await cli(
        'preauth',
        '--csv',
        path.join(out, 'devices.csv'),
        '--fleet',
        String(fleetId),
        '--json',
      );
      expect(pre.code, pre.stderr).toBe(0);
      expect(JSON.parse(pre.stdout)).toMatchObject({ created: 1, conflicts: 0 });
      // The same CSV again: the identity exists → conflict, exit code 1.
      const again = await cli('preauth', '--csv', path.join(out, 'devices.csv'), '--fleet', String(fleetId));
      expect(again.code).toBe(1);
      expect(again.stdout).toMatch(/conflicting 1/);

      const device = newDevice([`serial=${serial}`], fs.readFileSync(keyFile, 'utf8'));
      const run = await mender(device, 'bootstrap');
      expect(run.code, `${type}: ${run.output}`).toBe(0);
      const sets = (await authSets('status=accepted')).filter((s) => s.identity.serial === serial);
      expect(sets).toHaveLength(1);
    }
  }, 120_000);

  it('refuses a rejected device and a tampered signature with 401', async () => {
    const device = newDevice(['mac=02:fe:00:00:00:02', 'cpuid=1234']);
    expect((await mender(device, 'bootstrap')).code).not.toBe(0);
    const set = (await authSets('status=pending')).find((s) => s.identity.mac === '02:fe:00:00:00:02');
    expect(set?.identity).toEqual({ cpuid: '1234', mac: '02:fe:00:00:00:02' });
    const rejected = await cli('devices', 'reject', String(set!.id));
    expect(rejected.code, rejected.stderr).toBe(0);
    const run = await mender(device, 'bootstrap');
    expect(run.code, run.output).not.toBe(0);
    expect(run.output).toMatch(/rejected/);

    // Tampered: a valid request with one byte changed after signing, over the same HTTPS listener.
    const key = testKey('ec256');
    const { payload, headers } = signedAuthRequest(key, { mac: '02:fe:00:00:00:03' });
    const tampered = Buffer.from(payload);
    tampered[tampered.indexOf('02:fe')] = '1'.charCodeAt(0);
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const request = https.request(
        `${server.url}/api/devices/v1/authentication/auth_requests`,
        { method: 'POST', headers, ca, agent: false },
        (response) => {
          let text = '';
          response.on('data', (c: Buffer) => {
            text += c.toString();
          });
          response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
        },
      );
      request.on('error', reject);
      request.end(tampered);
    });
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.text).error.details.reason).toBe('bad_signature');
  }, 90_000);
});
