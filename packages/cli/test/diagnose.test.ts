/**
 * `fleetgate diagnose` end to end: the installed CLI (`bin/fleetgate.js`) as child processes, against the real
 * `fleetgate serve` with a real agent connected (in-process, over real sockets), on SQLite or, with DATABASE_URL,
 * PostgreSQL. Nothing is mocked.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs } from '@fleetgate/agent/test/helpers.ts';
import { type ListeningServer, requestJson, startListeningServer } from '@fleetgate/server/test/listening.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('../bin/fleetgate.js', import.meta.url));

describe('fleetgate diagnose', () => {
  let server: ListeningServer;
  let agent: Agent;
  let uuid: string;
  let viewerToken: string;
  let offlineUuid: string;

  const api = async (method: string, url: string, body?: unknown, token = server.adminToken) => {
    const answer = await requestJson(`${server.url}${url}`, { method, body, token });
    if (answer.status >= 300) throw new Error(`${method} ${url}: ${answer.status} ${answer.text}`);
    return answer.body;
  };

  /** `fleetgate --server … --token … …args` as a child process: exit code, stdout, stderr. */
  const fleetgate = async (args: string[], token = server.adminToken) =>
    run(process.execPath, [bin, '--server', server.url, '--token', token, ...args], {
      timeout: 40_000,
      env: { PATH: process.env.PATH, HOME: server.dataDir, FLEETGATE_CONFIG_DIR: server.dataDir },
    }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code?: number; stdout: string; stderr: string }) => ({
        code: error.code ?? -1,
        stdout: error.stdout,
        stderr: error.stderr,
      }),
    );

  beforeAll(async () => {
    server = await startListeningServer({ flags: { presenceFlushMs: 50 } });
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'diagnose-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'diagnose' });
    ({ agent, uuid } = await enrollAgent(
      server.url,
      key,
      { agentVersion: '0.1.0-diagnose' },
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    ));
    await api('PATCH', `/api/v1/devices/${uuid}`, { name: 'kiosk-7' });
    const viewer = await api('POST', '/api/v1/orgs/1/members', {
      email: 'viewer@diagnose.test',
      role: 'viewer',
    });
    viewerToken = (
      await api(
        'POST',
        '/api/v1/auth/login',
        { email: 'viewer@diagnose.test', password: viewer.password },
        '',
      )
    ).token;
    offlineUuid = (await api('POST', '/api/v1/devices', { fleetId: fleet.id, name: 'offline-one' })).uuid;
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await server?.close();
    removeTemporaryDirs();
  });

  it('runs the checks on a device named by its name and prints each status and summary', async () => {
    const result = await fleetgate(['diagnose', 'kiosk-7']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const [head, header, ...rows] = result.stdout.trimEnd().split('\n');
    // The worst of the checks' statuses: `unavailable` too where a check's tool does not answer on the test machine
    // (timedatectl and systemctl are installed but systemd is not running here, and may answer or not in time).
    expect(head).toMatch(
      new RegExp(
        `^kiosk-7 \\(${uuid}\\): (ok|warning|failed|unavailable) — .*\\(run \\d+, .* agent 0\\.1\\.0-diagnose, checks v1\\)$`,
      ),
    );
    expect(header).toMatch(/^CHECK\s+STATUS\s+SUMMARY$/);
    expect(rows.map((row) => row.split(/\s+/)[0])).toEqual([
      'disk',
      'memory',
      'load',
      'time-sync',
      'dns',
      'tcp',
      'agent',
      'network-interfaces',
      'systemd-failed-units',
      'kernel-messages',
    ]);
    expect(rows.find((row) => row.startsWith('tcp'))).toMatch(
      /^tcp\s+ok\s+connected to 127\.0\.0\.1:\d+ in \d+ ms/,
    );
  }, 60_000);

  it('answers the API report with --json, and lists and shows stored runs', async () => {
    const ran = await fleetgate(['diagnose', uuid, '--json']);
    expect(ran.code).toBe(0);
    const report = JSON.parse(ran.stdout);
    expect(report).toMatchObject({ version: 1, device: { uuid } });
    expect(report.checks).toHaveLength(10);

    const history = await fleetgate(['diagnose', 'kiosk-7', '--history']);
    expect(history.code).toBe(0);
    const lines = history.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^RUN\s+STARTED\s+BY\s+STATUS\s+CHECKS\s+AGENT$/);
    expect(lines[1]).toMatch(
      new RegExp(`^${report.id}\\s+\\S+\\s+admin@example\\.test\\s+${report.status}\\s`),
    );
    expect(lines).toHaveLength(3);
    const asJson = JSON.parse((await fleetgate(['diagnose', uuid, '--history', '--json'])).stdout);
    expect(asJson.total).toBe(2);
    expect(asJson.items[0]).toMatchObject({ id: report.id, status: report.status });

    const shown = JSON.parse(
      (await fleetgate(['diagnose', 'kiosk-7', '--run', String(report.id), '--json'])).stdout,
    );
    expect(shown).toEqual(report);
  }, 60_000);

  it('says at once, with one line and a non-zero exit, that an offline device is offline', async () => {
    const startedAt = performance.now();
    const result = await fleetgate(['diagnose', offlineUuid]);
    expect(performance.now() - startedAt).toBeLessThan(15_000);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^fleetgate: .*offline-one .* is offline[^\n]*\n$/);
  }, 30_000);

  it("refuses a viewer: diagnostics are operators' and above", async () => {
    const result = await fleetgate(['diagnose', uuid], viewerToken);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^fleetgate: [^\n]+\n$/);
    const history = await fleetgate(['diagnose', uuid, '--history'], viewerToken);
    expect(history.code).not.toBe(0);
  }, 30_000);
});
