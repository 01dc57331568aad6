import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ListeningServer, requestJson, startListeningServer } from '@fleetgate/server/test/listening.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/index.ts';
import { memoryIo } from '../src/memory-io.ts';

/** `fleetgate import balena-config` and the enrollment commands against a real listening server. */
let server: ListeningServer;
let workDir: string;
let fleetId: number;

beforeAll(async () => {
  server = await startListeningServer();
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-import-'));
  const fleet = await requestJson(`${server.url}/api/v1/fleets`, {
    method: 'POST',
    token: server.adminToken,
    body: { orgId: 1, name: 'kiosks', defaultDeviceType: 'raspberrypi4-64' },
  });
  expect(fleet.status).toBe(201);
  fleetId = fleet.body.id;
});

afterAll(async () => {
  await server?.close();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

async function fleetgate(...args: string[]) {
  const memory = memoryIo({
    env: { FLEETGATE_SERVER: server.url, FLEETGATE_TOKEN: server.adminToken, FLEETGATE_CONFIG_DIR: workDir },
  });
  const code = await runCli(args, memory.io);
  return { code, stdout: memory.stdout(), stderr: memory.stderr() };
}

function balenaDevice() {
  return { uuid: randomBytes(16).toString('hex'), deviceApiKey: randomBytes(16).toString('hex') };
}

function writeConfig(name: string, content: unknown): string {
  const file = path.join(workDir, name);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

async function deviceSelf(uuid: string, key: string) {
  return requestJson(`${server.url}/api/v1/device/self`, {
    headers: { authorization: `Basic ${Buffer.from(`${uuid}:${key}`).toString('base64')}` },
  });
}

describe('fleetgate import balena-config', () => {
  it('restores devices whose keys then work, reports failures per file and exits non-zero', async () => {
    const devices = Array.from({ length: 3 }, balenaDevice);
    const good = [
      writeConfig('a.json', {
        ...devices[0],
        applicationName: 'kiosks',
        applicationId: 1234,
        deviceType: 'raspberrypi4-64',
      }),
      writeConfig('b.json', { ...devices[1], applicationName: 'myorg/Kiosks', deviceType: 'raspberrypi3' }),
      // Newer balenaOS: the key per API host.
      writeConfig('c.json', {
        uuid: devices[2]!.uuid,
        deviceApiKeys: { 'api.balena-cloud.com': devices[2]!.deviceApiKey },
        applicationName: 'kiosks',
      }),
    ];
    const bad = [
      writeConfig('broken.json', '{"uuid": '),
      writeConfig('nokey.json', { uuid: balenaDevice().uuid, applicationName: 'kiosks' }),
      writeConfig('elsewhere.json', { ...balenaDevice(), applicationName: 'no-such-fleet' }),
      writeConfig('badtype.json', {
        ...balenaDevice(),
        applicationName: 'kiosks',
        deviceType: 'toaster-9000',
      }),
    ];

    const first = await fleetgate('import', 'balena-config', ...good, ...bad);
    expect(first.code, first.stderr).toBe(1);
    expect(first.stdout).toContain('created 3, already present 0, failed 4 (7 config files)');
    expect(first.stdout).toMatch(/broken\.json.*cannot read it/);
    expect(first.stdout).toMatch(/nokey\.json.*no deviceApiKey/);
    expect(first.stdout).toMatch(/elsewhere\.json.*no fleet named "no-such-fleet"/);
    expect(first.stdout).toMatch(/badtype\.json.*toaster-9000/);
    expect(first.stderr).toContain('fleetgate: 4 of 7 devices were not imported');
    // Not a terminal: the progress is plain lines.
    expect(first.stderr).toContain('importing [##############################] 4/4');

    for (const device of devices) {
      const self = await deviceSelf(device.uuid, device.deviceApiKey);
      expect(self.status).toBe(200);
      expect(self.body.fleetId).toBe(fleetId);
    }
    expect((await deviceSelf(devices[1]!.uuid, devices[1]!.deviceApiKey)).body.deviceType).toBe(
      'raspberrypi3',
    );

    // Running it again is harmless: everything is already present.
    const again = await fleetgate('--json', 'import', 'balena-config', ...good);
    expect(again.code, again.stderr).toBe(0);
    const summary = JSON.parse(again.stdout);
    expect(summary).toMatchObject({ created: 0, present: 3, failed: 0 });
    expect(again.stderr).toBe('');
  });

  it('puts every device in the fleet and type given on the command line', async () => {
    const device = balenaDevice();
    const file = writeConfig('other.json', { ...device, applicationName: 'unrelated', deviceType: 'nope' });
    const answer = await fleetgate(
      'import',
      'balena-config',
      file,
      '--fleet',
      String(fleetId),
      '--device-type',
      'generic-amd64',
    );
    expect(answer.code, answer.stderr).toBe(0);
    expect(answer.stdout).toContain('created 1, already present 0, failed 0');
    expect((await deviceSelf(device.uuid, device.deviceApiKey)).body.deviceType).toBe('generic-amd64');
  });
});

describe('enrollment commands', () => {
  it('create, list and revoke provisioning keys; decommission a device; list recovery candidates', async () => {
    const created = await fleetgate(
      '--json',
      'provisioning-keys',
      'create',
      'line-1',
      '--fleet',
      String(fleetId),
      '--max-uses',
      '2',
    );
    expect(created.code, created.stderr).toBe(0);
    const key = JSON.parse(created.stdout);
    expect(key.key).toMatch(/^fgp_/);

    const listed = await fleetgate('provisioning-keys', 'ls', '--fleet', String(fleetId));
    expect(listed.stdout).toMatch(new RegExp(`${key.id}\\s+line-1\\s+${key.prefix}\\s+0/2`));
    expect(listed.stdout).not.toContain(key.key);

    const device = balenaDevice();
    const registered = await requestJson(`${server.url}/api/v1/devices/register`, {
      method: 'POST',
      token: key.key,
      body: { uuid: device.uuid, device_type: 'raspberrypi4-64', api_key: device.deviceApiKey },
    });
    expect(registered.status).toBe(201);
    expect((await deviceSelf(device.uuid, device.deviceApiKey)).status).toBe(200);

    const decommissioned = await fleetgate('devices', 'decommission', device.uuid, '--yes');
    expect(decommissioned.code, decommissioned.stderr).toBe(0);
    expect(decommissioned.stdout).toContain(`decommissioned device ${registered.body.id}`);
    expect((await deviceSelf(device.uuid, device.deviceApiKey)).status).toBe(401);

    const removed = await fleetgate('provisioning-keys', 'rm', String(key.id));
    expect(removed.stdout).toContain(`revoked provisioning key ${key.id}`);

    const unknown = balenaDevice();
    expect((await deviceSelf(unknown.uuid, unknown.deviceApiKey)).status).toBe(401);
    const candidates = await fleetgate('recovery', 'ls');
    expect(candidates.stdout).toContain(unknown.uuid);
    const id = /^(\d+)\s/m.exec(
      candidates.stdout.split('\n').find((l) => l.includes(unknown.uuid)) ?? '',
    )?.[1];
    const adopted = await fleetgate('recovery', 'adopt', id!, '--fleet', String(fleetId));
    expect(adopted.code, adopted.stderr).toBe(0);
    expect(adopted.stdout).toContain('adopted');
    expect((await deviceSelf(unknown.uuid, unknown.deviceApiKey)).status).toBe(200);

    const wrong = await fleetgate('recovery', 'discard', 'abc');
    expect(wrong.code).not.toBe(0);
  });
});

describe('fleetgate provisioning-keys restore', () => {
  it('gives the fleet back a key devices still hold, without printing it; the key registers devices again', async () => {
    const lost = `image-key-${randomBytes(16).toString('hex')}`;
    const keyFile = writeConfig('provisioning.key', `${lost}\n`);
    const restored = await fleetgate(
      'provisioning-keys',
      'restore',
      'image 2026-11',
      '--fleet',
      String(fleetId),
      '--key-file',
      keyFile,
    );
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(
      /^restored provisioning key \d+ "image 2026-11" \(image-…\) for fleet \d+/,
    );
    expect(restored.stdout).not.toContain(lost);

    const device = balenaDevice();
    const registered = await requestJson(`${server.url}/api/v1/devices/register`, {
      method: 'POST',
      token: lost,
      body: { uuid: device.uuid, device_type: 'raspberrypi4-64', api_key: device.deviceApiKey },
    });
    expect(registered.status).toBe(201);

    const twice = await fleetgate(
      'provisioning-keys',
      'restore',
      'again',
      '--fleet',
      String(fleetId),
      '--key-file',
      keyFile,
    );
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/exists already/);
    const missing = await fleetgate(
      'provisioning-keys',
      'restore',
      'x',
      '--fleet',
      String(fleetId),
      '--key-file',
      path.join(workDir, 'nope'),
    );
    expect(missing.stderr).toMatch(/cannot read .*nope/);
  });
});
