/**
 * The `fleetgate-agent` command as a separate process against the in-test hub: it connects over TLS, stops
 * cleanly on SIGTERM, and exits 3 when the device is decommissioned. (Its idle memory is measured by
 * bench/tunnel, not asserted here: a figure that depends on the machine's load does not belong in a test.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { CloseCode } from '@fleetgate/protocol';
import { initTls, tlsFilesOf } from '@fleetgate/server';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runAgentCli } from '../src/cli.ts';
import { writeCredentials } from '../src/credentials.ts';
import { removeTemporaryDirs, temporaryDir } from './helpers.ts';
import { startTestHub, type TestHub } from './hub.ts';

const bin = path.resolve(import.meta.dirname, '../bin/fleetgate-agent.js');
const children: ChildProcess[] = [];
const hubs: TestHub[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
});
afterAll(removeTemporaryDirs);

/** A config file for a device that already has credentials. */
function configFile(serverUrl: string, extra: Record<string, unknown> = {}): string {
  const dir = temporaryDir();
  const dataDir = path.join(dir, 'data');
  writeCredentials(dataDir, {
    type: 'device-key',
    uuid: randomBytes(16).toString('hex'),
    deviceKey: randomBytes(32).toString('hex'),
    registered: true,
  });
  const file = path.join(dir, 'agent.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      server: serverUrl,
      dataDir,
      deviceType: 'generic-amd64',
      backoff: { base: 0.05, cap: 0.5 },
      ...extra,
    }),
  );
  return file;
}

function startAgentProcess(config: string): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [bin, 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  return { child, output: () => output };
}

describe('fleetgate-agent process', () => {
  it('connects over TLS with the server CA and stops cleanly on SIGTERM', async () => {
    // The server's own CA and certificate, as `fleetgate init` makes them; the agent trusts the CA file.
    const tlsDir = temporaryDir();
    await initTls({ dataDir: tlsDir, hosts: ['localhost'] });
    const files = tlsFilesOf(tlsDir);
    const hub = await startTestHub({
      tls: { cert: fs.readFileSync(files.serverCert), key: fs.readFileSync(files.serverKey) },
    });
    hubs.push(hub);
    const { child, output } = startAgentProcess(configFile(hub.url, { caFile: files.caCert }));
    const connection = await hub.nextConnection(20_000);
    expect(await connection.hello).toMatch(/^fleetgate-agent\//);
    await connection.next('state-report');
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(output()).toMatch(/tunnel connected/);
    expect(output()).toMatch(/SIGTERM: stopping/);
  }, 40_000);

  it('exits 3 when the server says the device was decommissioned', async () => {
    const hub = await startTestHub();
    hubs.push(hub);
    const { child, output } = startAgentProcess(configFile(hub.url));
    const connection = await hub.nextConnection(20_000);
    await connection.hello;
    connection.mux.close(CloseCode.decommissioned, 'decommissioned by admin@example.test');
    const [code] = await once(child, 'exit');
    expect(code).toBe(3);
    expect(output()).toMatch(/decommissioned/);
  }, 40_000);
});

describe('fleetgate-agent commands', () => {
  const io = () => {
    const out = { stdout: '', stderr: '' };
    return {
      out,
      io: {
        stdout: { write: (text: string) => (out.stdout += text) },
        stderr: { write: (text: string) => (out.stderr += text) },
        env: {},
        handleSignals: false,
      },
    };
  };

  it('status shows the credentials without the secret', async () => {
    const config = configFile('https://fleet.example.com');
    const { out, io: cliIo } = io();
    expect(await runAgentCli(['status', '--config', config], cliIo)).toBe(0);
    expect(out.stdout).toMatch(/server:\s+https:\/\/fleet\.example\.com/);
    expect(out.stdout).toMatch(/credentials:\s+uuid [0-9a-f]{32}, device key/);
    expect(out.stdout).toMatch(/file mode:\s+0600/);
    const key = JSON.parse(
      fs.readFileSync(path.join(path.dirname(config), 'data/credentials.json'), 'utf8'),
    ).deviceKey;
    expect(out.stdout).not.toContain(key);
  });

  it('a wrong configuration exits 2 with every problem listed; unknown commands show the usage', async () => {
    const dir = temporaryDir();
    const file = path.join(dir, 'agent.json');
    fs.writeFileSync(file, JSON.stringify({ server: 'nope', allowedPorts: ['ssh'] }));
    const { out, io: cliIo } = io();
    expect(await runAgentCli(['run', '--config', file], cliIo)).toBe(2);
    expect(out.stderr).toMatch(/server:/);
    expect(out.stderr).toMatch(/allowedPorts\.0:/);
    expect(await runAgentCli(['dance'], cliIo)).toBe(2);
    expect(out.stderr).toMatch(/unknown command dance[\s\S]*usage:/);
  });
});
