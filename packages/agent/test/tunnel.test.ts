import fs from 'node:fs';
import path from 'node:path';
import { CloseCode } from '@fleetgate/protocol';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type RunningAgent, removeTemporaryDirs, runAgent, temporaryDir, waitFor } from './helpers.ts';
import { type HubConnection, startTestHub, type TestHub } from './hub.ts';

const running: RunningAgent[] = [];
const hubs: TestHub[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((agent) => agent.stop()));
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
});
afterAll(removeTemporaryDirs);

async function hubWith(options: Parameters<typeof startTestHub>[0] = {}) {
  const hub = await startTestHub(options);
  hubs.push(hub);
  return hub;
}
function agentOn(hub: TestHub, file: Record<string, unknown> = {}, extra = {}) {
  const agent = runAgent(hub.url, file, extra);
  running.push(agent);
  return agent;
}

describe('tunnel client', () => {
  it('authenticates in the upgrade, says hello and reports its state at once', async () => {
    const hub = await hubWith();
    const agent = agentOn(hub);
    const connection = await hub.nextConnection();
    const key = JSON.parse(fs.readFileSync(path.join(agent.config.dataDir, 'credentials.json'), 'utf8'));
    expect(connection.authorization).toBe(
      `Basic ${Buffer.from(`${agent.uuid}:${key.deviceKey}`).toString('base64')}`,
    );
    expect(connection.agentHeader).toBe('0.1.0-test');
    expect(await connection.hello).toBe('fleetgate-agent/0.1.0-test');
    const report = connection.reports[0] ?? (await connection.next('state-report'));
    expect(report).toMatchObject({ type: 'state-report', agentVersion: '0.1.0-test' });
    expect(report.hostname.length).toBeGreaterThan(0);
    expect(report.kernel).toMatch(/Linux/);
    expect(report.uptimeSeconds).toBeGreaterThan(0);
    expect(report.memory?.totalBytes).toBeGreaterThan(0);
    expect(report.disk?.totalBytes).toBeGreaterThan(0);
  });

  it('reconnects after the socket is killed', async () => {
    const hub = await hubWith();
    agentOn(hub);
    const first = await hub.nextConnection();
    await first.hello;
    first.socket.terminate();
    const second = await hub.nextConnection();
    expect(await second.hello).toMatch(/fleetgate-agent/);
    expect(second.id).toBe(first.id + 1);
  });

  it('reconnects with backoff after superseded (4005) and going away (4001), and stops for good on decommissioned (4006)', async () => {
    const hub = await hubWith();
    const agent = agentOn(hub);
    for (const code of [CloseCode.superseded, CloseCode.goingAway]) {
      const connection = await hub.nextConnection();
      await connection.hello;
      connection.mux.close(code, 'test');
    }
    const last = await hub.nextConnection();
    await last.hello;
    last.mux.close(CloseCode.decommissioned, 'the device was decommissioned');
    expect(await agent.done).toBe('decommissioned');
    // No further attempt, even after several backoff windows (cap 0.5 s).
    const attempts = hub.attempts.length;
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(hub.attempts.length).toBe(attempts);
  });

  it('after "going away" (a server restart) keeps retrying within the restart cap while the server is down', async () => {
    let down = false;
    const hub = await hubWith({ authorize: () => (down ? 503 : undefined) });
    const { agent } = agentOn(hub, { backoff: { base: 0.05, cap: 300, restartCap: 0.2, stableAfter: 30 } });
    const first = await hub.nextConnection();
    await first.hello;
    const delays: number[] = [];
    agent.tunnelClient!.on('retry', ({ delayMs }: { delayMs: number }) => delays.push(delayMs));
    down = true;
    first.mux.close(CloseCode.goingAway, 'server restarting');
    // Eight refused attempts: without the restart cap the windows would reach 0.05 s · 2^7 = 6.4 s.
    while (hub.attempts.filter((a) => a.status === 503).length < 8)
      await new Promise((r) => setTimeout(r, 20));
    down = false;
    expect(await (await hub.nextConnection(5000)).hello).toMatch(/fleetgate-agent/);
    expect(delays.length).toBeGreaterThanOrEqual(9);
    for (const delay of delays) expect(delay).toBeLessThan(200);
  });

  it('stops when the upgrade is refused because the device was decommissioned (403)', async () => {
    const hub = await hubWith({
      authorize: () => 403,
      refusalBody: () => ({ error: { code: 'forbidden', message: 'the device was decommissioned' } }),
    });
    const agent = agentOn(hub);
    expect(await agent.done).toBe('decommissioned');
    expect(hub.attempts).toHaveLength(1);
  });

  it('backs off on refused upgrades (401), then gets in once the server accepts', async () => {
    let refuse = 3;
    const hub = await hubWith({ authorize: () => (refuse-- > 0 ? 401 : undefined) });
    agentOn(hub);
    const connection = await hub.nextConnection();
    await connection.hello;
    expect(hub.attempts.map((a) => a.status)).toEqual([401, 401, 401, 101]);
  });

  it('drops a connection whose pongs stop coming, and reconnects', async () => {
    const hub = await hubWith();
    agentOn(hub, { liveness: { interval: 0.1, timeout: 0.2 } });
    const first = await hub.nextConnection();
    await first.hello;
    // The hub stops reading: pings go unanswered, as on a dead NAT mapping.
    (first.socket as unknown as { pause(): void }).pause();
    const second = await hub.nextConnection(5000);
    expect(await second.hello).toMatch(/fleetgate-agent/);
  });

  it('N agents dropped at once by a server restart come back spread out, not in lock-step', async () => {
    const hub = await hubWith();
    const count = 20;
    const agents = Array.from({ length: count }, () =>
      agentOn(hub, { backoff: { base: 1, cap: 300, stableAfter: 30 } }),
    );
    const firsts: HubConnection[] = [];
    for (let i = 0; i < count; i += 1) firsts.push(await hub.nextConnection());
    await Promise.all(firsts.map((c) => c.hello));
    const delays: number[] = [];
    for (const { agent } of agents) {
      agent.tunnelClient!.once('retry', ({ delayMs }: { delayMs: number }) => delays.push(delayMs));
    }
    const restartAt = performance.now();
    for (const connection of firsts) connection.mux.close(CloseCode.goingAway, 'server restarting');
    const seconds: HubConnection[] = [];
    for (let i = 0; i < count; i += 1) seconds.push(await hub.nextConnection(5000));
    const arrivals = seconds.map((c) => c.connectedAt - restartAt).sort((a, b) => a - b);
    // Full jitter over [0, 1 s): every first retry within the base window, spread across it.
    expect(delays).toHaveLength(count);
    for (const delay of delays) expect(delay).toBeLessThan(1000);
    expect(new Set(delays).size).toBeGreaterThan(count * 0.8);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThan(400);
    // Never half of the agents in one 100 ms slice (lock-step would put all of them in a few ms; uniform
    // arrivals put about 2 in each slice, and 11 or more in any slice has odds of about 1 in 10^5).
    for (const start of arrivals) {
      const inSlice = arrivals.filter((t) => t >= start && t < start + 100).length;
      expect(inSlice).toBeLessThanOrEqual(count / 2);
    }
  });
});

describe('variables delivery', () => {
  it('writes the env file, runs the hook once per change, and answers variables-applied', async () => {
    let revision = 1;
    let variables: Record<string, string> = { GREETING: 'it\'s a "test" $HOME', PORT: '8080' };
    const hub = await hubWith({ variables: () => ({ revision, variables }) });
    const dir = temporaryDir();
    const envFile = path.join(dir, 'app.env');
    const hookLog = path.join(dir, 'hook.log');
    agentOn(hub, { variables: { envFile, hook: `echo ran >> ${hookLog}`, hookTimeout: 10 } });

    const first = await hub.nextConnection();
    expect(await first.next('variables-applied')).toEqual({ type: 'variables-applied', revision: 1 });
    expect(fs.readFileSync(envFile, 'utf8')).toContain(`GREETING='it'\\''s a "test" $HOME'\nPORT='8080'\n`);
    expect(fs.statSync(envFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(hookLog, 'utf8')).toBe('ran\n');

    // The same variables again (a reconnect): answered, but the hook does not run again.
    first.socket.terminate();
    const second = await hub.nextConnection();
    expect(await second.next('variables-applied')).toEqual({ type: 'variables-applied', revision: 1 });
    expect(fs.readFileSync(hookLog, 'utf8')).toBe('ran\n');

    // A change pushed on the live connection: written, hook runs once more.
    revision = 2;
    variables = { PORT: '9090' };
    second.mux.sendControl({ type: 'variables', revision, variables });
    expect(await second.next('variables-applied')).toEqual({ type: 'variables-applied', revision: 2 });
    expect(fs.readFileSync(envFile, 'utf8')).toMatch(/^PORT='9090'$/m);
    expect(fs.readFileSync(envFile, 'utf8')).not.toContain('GREETING');
    expect(fs.readFileSync(hookLog, 'utf8')).toBe('ran\nran\n');
  });

  it('reports a failing hook in variables-applied', async () => {
    const hub = await hubWith({ variables: () => ({ revision: 5, variables: { A: '1' } }) });
    agentOn(hub, {
      variables: { envFile: path.join(temporaryDir(), 'a.env'), hook: 'echo broken >&2; exit 3' },
    });
    const connection = await hub.nextConnection();
    const applied = await connection.next('variables-applied');
    expect(applied.revision).toBe(5);
    expect(applied.error).toMatch(/exited with code 3: broken/);
  });
});

describe('state reports', () => {
  it('reports again at least every maxInterval', async () => {
    const hub = await hubWith();
    agentOn(hub, { stateReport: { checkInterval: 0.1, maxInterval: 0.3 } });
    const connection = await hub.nextConnection();
    await waitFor(() => connection.reports.length >= 3, 5000, 'three state reports');
  });
});
