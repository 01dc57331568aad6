import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { DIAGNOSTICS_VERSION, diagnosticsReportSchema } from '@fleetgate/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bounded, type DiagnosticsContext, diagnosticsChecks, runDiagnostics } from './diagnostics.ts';

/** A stand-in for the server: answers /healthz with its Date header, or never (`/healthz` while `stalled`). */
let server: http.Server;
let port: number;
let stalled = false;

beforeAll(async () => {
  server = http.createServer((_request, response) => {
    if (stalled) return; // never answers
    response.end('{"status":"ok"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const context = (url = `http://127.0.0.1:${port}`): DiagnosticsContext => ({
  server: { url },
  agentVersion: '1.2.3-test',
  dataDir: os.tmpdir(),
  tunnel: () => ({ connectedAt: Date.now() - 90_000, ping: async () => 1.5 }),
});

describe('diagnostics', () => {
  it('run every check of version 1 and answer a report the server accepts', async () => {
    const report = await runDiagnostics(context());
    expect(diagnosticsReportSchema.parse(report)).toEqual(report);
    expect(report.version).toBe(DIAGNOSTICS_VERSION);
    expect(report.checks.map((c) => c.id)).toEqual([
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
    const byId = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    // The server here is reachable and addressed by IP: these must succeed.
    expect(byId.tcp).toMatchObject({ status: 'ok', data: { host: '127.0.0.1', port } });
    expect(byId.dns).toMatchObject({ status: 'ok' });
    expect(byId['time-sync']!.data).toHaveProperty('offsetMs');
    expect(Math.abs(byId['time-sync']!.data.offsetMs as number)).toBeLessThan(2000);
    expect(byId.agent).toMatchObject({ status: 'ok', data: { agentVersion: '1.2.3-test', rttMs: 1.5 } });
    expect(byId.disk!.status).toMatch(/^(ok|warning|failed)$/);
    expect((byId.disk!.data.filesystems as unknown[]).length).toBeGreaterThan(0);
    expect(byId.memory!.data.totalBytes).toBeGreaterThan(0);
    expect(byId.load!.data.cpus).toBeGreaterThan(0);
    for (const check of report.checks) expect(check.summary.length, check.id).toBeGreaterThan(0);
  }, 20_000);

  it('resolve a server name and report what it resolves to', async () => {
    const report = await runDiagnostics(context(`http://localhost:${port}`), { only: ['dns', 'tcp'] });
    const dns = report.checks.find((c) => c.id === 'dns')!;
    expect(dns.status).toBe('ok');
    expect(dns.data.addresses).toEqual(
      expect.arrayContaining([expect.stringMatching(/^(127\.0\.0\.1|::1)$/)]),
    );
  });

  it('say failed when the server cannot be reached or its name does not resolve', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await runDiagnostics(context(`http://127.0.0.1:${closedPort}`), { only: ['tcp'] });
    expect(refused.checks[0]).toMatchObject({ status: 'failed', data: { error: 'ECONNREFUSED' } });
    const unknown = await runDiagnostics(context('http://no-such-host.invalid:1'), { only: ['dns'] });
    expect(unknown.checks[0]).toMatchObject({ status: 'failed' });
    expect(unknown.checks[0]!.summary).toMatch(/no-such-host\.invalid does not resolve/);
  });

  it('end each check at its own timeout, as timed_out, without waiting for the others', async () => {
    stalled = true;
    try {
      const startedAt = performance.now();
      const report = await runDiagnostics(context(), { only: ['time-sync', 'load'], checkTimeoutMs: 300 });
      expect(performance.now() - startedAt).toBeLessThan(2000);
      expect(report.checks.find((c) => c.id === 'time-sync')).toMatchObject({
        status: 'timed_out',
        summary: 'no result within 300 ms',
      });
      expect(report.checks.find((c) => c.id === 'load')!.status).not.toBe('timed_out');
    } finally {
      stalled = false;
    }
  });

  it('say unavailable, not failed, where systemd does not run', async () => {
    // A root without /run/systemd/system: as on a device without systemd.
    const report = await runDiagnostics(
      { ...context(), root: os.tmpdir() },
      { only: ['systemd-failed-units'] },
    );
    expect(report.checks[0]).toMatchObject({ status: 'unavailable', summary: 'systemd does not run here' });
  });

  it('keep the report within its size bound by dropping the largest data first', () => {
    const report = {
      version: 1,
      agentVersion: 'x',
      checks: [
        { id: 'small', title: 'Small', status: 'ok' as const, summary: 's', durationMs: 1, data: { a: 1 } },
        {
          id: 'large',
          title: 'Large',
          status: 'ok' as const,
          summary: 'l',
          durationMs: 1,
          data: { lines: Array.from({ length: 1000 }, () => 'x'.repeat(100)) },
        },
      ],
    };
    const cut = bounded(report, 4096);
    expect(Buffer.byteLength(JSON.stringify(cut))).toBeLessThanOrEqual(4096);
    expect(cut.checks[0]!.data).toEqual({ a: 1 });
    expect(cut.checks[1]!.data).toEqual({ truncated: true });
  });

  it('are a fixed list of distinct ids', () => {
    const ids = diagnosticsChecks.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(10);
  });
});
