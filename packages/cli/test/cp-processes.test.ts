/**
 * `fleetgate cp` as on real machines, every part its own process: `fleetgate serve`, a `fleetgate-agent` that
 * enrolls with a provisioning key and writes real files, and `fleetgate cp` on "the laptop", both ways, with
 * SHA-256 compared on both ends; refusals and an offline device end with a non-zero exit and one line saying why.
 * SQLite, or PostgreSQL with DATABASE_URL.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentBin, callApi, cliBin, eventually, freePort, Processes, type Running } from './processes.ts';

const ADMIN = { email: 'admin@cp.test', password: 'cp-test-password' };
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

let processes: Processes;
let base: string;
let session: string;
let agent: Running;
let uuid: string;
/** "The device's" directory (the agent runs on this machine) and "the laptop's". */
let deviceDir: string;
let laptopDir: string;

const api = (method: string, url: string, body?: unknown) => callApi(base, session, method, url, body);

/** `fleetgate ...args` as its own process, signed in by FLEETGATE_SERVER and FLEETGATE_TOKEN. */
function fleetgate(
  args: string[],
  token = session,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliBin, ...args],
      {
        env: { PATH: process.env.PATH, HOME: processes.dir, FLEETGATE_SERVER: base, FLEETGATE_TOKEN: token },
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  processes = new Processes();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  processes.serve(port, ADMIN, { FLEETGATE_PRESENCE_FLUSH_MS: '200' });
  await eventually('the server to answer', async () => (await fetch(`${base}/readyz`)).ok || undefined);
  ({ token: session } = await api('POST', '/api/v1/auth/login', ADMIN));
  const org = (await api('GET', '/api/v1/orgs')).items[0];
  const fleet = await api('POST', '/api/v1/fleets', {
    orgId: org.id,
    name: 'cp',
    defaultDeviceType: 'generic-amd64',
  });
  const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'cp' });
  deviceDir = path.join(processes.dir, 'device-files');
  laptopDir = path.join(processes.dir, 'laptop');
  fs.mkdirSync(deviceDir);
  fs.mkdirSync(laptopDir);
  const agentConfig = path.join(processes.dir, 'agent.json');
  fs.writeFileSync(
    agentConfig,
    JSON.stringify({
      server: base,
      dataDir: path.join(processes.dir, 'agent'),
      deviceType: 'generic-amd64',
      name: 'files-kiosk',
      provisioningKey: key,
      backoff: { base: 0.2, cap: 2 },
      logLevel: 'warn',
    }),
  );
  agent = processes.start(agentBin, ['run', '--config', agentConfig]);
  uuid = await eventually('the agent to enroll and come online', async () => {
    const page = await api('GET', `/api/v1/devices?fleet=${fleet.id}&status=online`);
    return page.items[0]?.uuid;
  });
}, 60_000);

afterAll(async () => {
  await processes?.cleanUp();
});

describe('fleetgate cp', () => {
  it('uploads a 5 MB file to a device by name and downloads it back by uuid prefix, SHA-256 equal on both ends', async () => {
    const bytes = randomBytes(5 * 1000 * 1000);
    const local = path.join(laptopDir, 'firmware.bin');
    fs.writeFileSync(local, bytes);

    const up = await fleetgate(['cp', local, `files-kiosk:${deviceDir}/`]);
    expect(up, up.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(up.stdout).toContain(`${local} → files-kiosk:${deviceDir}/firmware.bin`);
    expect(up.stdout).toContain(`SHA-256 ${sha256(bytes)} verified`);
    expect(sha256(fs.readFileSync(path.join(deviceDir, 'firmware.bin')))).toBe(sha256(bytes));

    const back = path.join(laptopDir, 'back');
    fs.mkdirSync(back);
    const down = await fleetgate(['--json', 'cp', `${uuid.slice(0, 8)}:${deviceDir}/firmware.bin`, back]);
    expect(down, down.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(down.stdout)).toEqual({
      direction: 'download',
      device: uuid.slice(0, 8),
      devicePath: `${deviceDir}/firmware.bin`,
      localPath: path.join(back, 'firmware.bin'),
      size: bytes.length,
      sha256: sha256(bytes),
      verified: true,
      session: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(sha256(fs.readFileSync(path.join(back, 'firmware.bin')))).toBe(sha256(bytes));
  }, 60_000);

  it('says why when the device refuses, the role does not allow it or the arguments are wrong, leaving no file', async () => {
    const missing = await fleetgate(['cp', `files-kiosk:${deviceDir}/missing.txt`, laptopDir]);
    expect(missing.code).not.toBe(0);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(
      /^fleetgate: cannot copy files-kiosk:.*missing\.txt: .*no such file or directory\n$/,
    );
    expect(fs.readdirSync(laptopDir).filter((name) => name.includes('missing'))).toEqual([]);

    const viewer = await api('POST', '/api/v1/orgs/1/members', { email: 'viewer@cp.test', role: 'viewer' });
    const { token } = await callApi(base, undefined, 'POST', '/api/v1/auth/login', {
      email: 'viewer@cp.test',
      password: viewer.password,
    });
    fs.writeFileSync(path.join(laptopDir, 'note.txt'), 'hello');
    const refused = await fleetgate(
      ['cp', path.join(laptopDir, 'note.txt'), `files-kiosk:${deviceDir}/note.txt`],
      token,
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^fleetgate: cannot copy .*: .*role.*\n$/);
    expect(fs.existsSync(path.join(deviceDir, 'note.txt'))).toBe(false);

    const relative = await fleetgate(['cp', path.join(laptopDir, 'note.txt'), 'files-kiosk:tmp/note.txt']);
    expect(relative.code).not.toBe(0);
    expect(relative.stderr).toContain('must be absolute');
    const bothLocal = await fleetgate(['cp', path.join(laptopDir, 'note.txt'), path.join(laptopDir, 'x')]);
    expect(bothLocal.code).not.toBe(0);
    expect(bothLocal.stderr).toContain('one side of cp is a device');
  }, 60_000);

  it('says the device is offline when it is', async () => {
    agent.child.kill('SIGTERM');
    await eventually('the device to be offline', async () =>
      (await api('GET', `/api/v1/devices/${uuid}`)).status === 'offline' ? true : undefined,
    );
    const offline = await fleetgate(['cp', `files-kiosk:${deviceDir}/firmware.bin`, laptopDir]);
    expect(offline.code).not.toBe(0);
    expect(offline.stderr).toMatch(/^fleetgate: cannot copy .*: device files-kiosk .* is offline.*\n$/);
  }, 60_000);
});
