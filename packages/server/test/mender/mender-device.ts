import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The real Debian mender-client 3.4.0 as a test device.
 *
 * The client takes its identity from a fixed path (/usr/share/mender/identity/mender-device-identity), its
 * artifact name from /etc/mender/artifact_info and inventory scripts from /usr/share/mender/inventory; no
 * flag or configuration key moves them. So each test device runs the client in its own mount namespace
 * (`unshare -m`, root) where its own directories are bind-mounted over those three: every device has its own
 * identity, while the data directory (`-d`: key mender-agent.pem, mender-store) and configuration (`-c`)
 * are per device anyway. Nothing outside the namespace changes.
 */

export const MENDER_PACKAGE = 'mender-client';
const hasMender = spawnSync('sh', ['-c', 'command -v mender'], { encoding: 'utf8' }).status === 0;

/** Whether this machine can run mender-client devices (the client installed, and root to unshare). */
export const canRunMender =
  hasMender &&
  ['/usr/share/mender/identity', '/usr/share/mender/inventory', '/etc/mender'].every((d) =>
    fs.existsSync(d),
  ) &&
  spawnSync('unshare', ['-m', 'true']).status === 0;

/** Why `canRunMender` is false, for the skip message. */
export const whyMenderCannotRun = hasMender
  ? 'cannot unshare a mount namespace (run as root)'
  : `install the Debian package ${MENDER_PACKAGE}`;

export interface MenderDevice {
  dir: string;
  dataDir: string;
  conf: string;
}

export interface MenderRun {
  code: number | null;
  output: string;
}

export interface MenderDeviceOptions {
  /** The device's own directory (made here). */
  dir: string;
  /** What its identity script prints, `key=value` each. */
  identityLines: string[];
  /** `ServerURL`: `https://localhost:PORT` (the client checks the certificate's host name). */
  serverUrl: string;
  /** `ServerCertificate`: the CA that signed the server certificate. */
  caFile: string;
  /** Its private key (`mender-agent.pem`), e.g. one made by `fleetgate keygen`. Default: the client makes one. */
  privateKeyPem?: string;
  /** `test_device=<inventoryId>` in its inventory and `fleetgate-test-<inventoryId>` as its artifact name. */
  inventoryId: number | string;
}

/** A device directory: its identity script, artifact_info, an inventory script, data dir and mender.conf. */
export function createMenderDevice(options: MenderDeviceOptions): MenderDevice {
  const { dir } = options;
  const dataDir = path.join(dir, 'data');
  for (const d of ['identity', 'etc', 'inventory', 'data'])
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  const script = (file: string, lines: string[]) =>
    fs.writeFileSync(file, `#!/bin/sh\n${lines.map((l) => `echo '${l}'`).join('\n')}\n`, { mode: 0o755 });
  script(path.join(dir, 'identity', 'mender-device-identity'), options.identityLines);
  script(path.join(dir, 'inventory', 'mender-inventory-fleetgate'), [
    `test_device=${options.inventoryId}`,
    'tags=a',
    'tags=b',
  ]);
  fs.writeFileSync(
    path.join(dir, 'etc', 'artifact_info'),
    `artifact_name=fleetgate-test-${options.inventoryId}\n`,
  );
  fs.writeFileSync(path.join(dataDir, 'device_type'), 'device_type=qemux86-64\n');
  if (options.privateKeyPem)
    fs.writeFileSync(path.join(dataDir, 'mender-agent.pem'), options.privateKeyPem, { mode: 0o600 });
  const conf = path.join(dir, 'mender.conf');
  fs.writeFileSync(
    conf,
    JSON.stringify({
      ServerURL: options.serverUrl,
      ServerCertificate: options.caFile,
      InventoryPollIntervalSeconds: 5,
      UpdatePollIntervalSeconds: 5,
      RetryPollIntervalSeconds: 1,
    }),
  );
  return { dir, dataDir, conf };
}

/** `unshare` arguments that run `mender <command>` as `device`. */
export function menderArgs(device: MenderDevice, command: string): string[] {
  return [
    '-m',
    'sh',
    '-c',
    [
      `mount --bind '${device.dir}/identity' /usr/share/mender/identity`,
      `mount --bind '${device.dir}/inventory' /usr/share/mender/inventory`,
      `mount --bind '${device.dir}/etc' /etc/mender`,
      `exec mender --no-syslog -c '${device.conf}' -d '${device.dataDir}' ${command}`,
    ].join(' && '),
  ];
}

/** Runs a mender command to its end, killed after `timeoutMs`. */
export function runMender(device: MenderDevice, command: string, timeoutMs = 30_000): Promise<MenderRun> {
  return new Promise((resolve) => {
    const child = spawn('unshare', menderArgs(device, command), {
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** `mender daemon` as `device`, running until killed (or `timeoutMs`); `output()` is what it printed so far. */
export function startMenderDaemon(
  device: MenderDevice,
  timeoutMs: number,
): { child: ChildProcess; output: () => string } {
  const child = spawn('unshare', menderArgs(device, 'daemon'), {
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  return { child, output: () => output };
}

/** Forgets the device token the client stored, so the next bootstrap asks the server again. */
export function forgetMenderToken(device: MenderDevice): void {
  for (const f of ['mender-store', 'mender-store-lock'])
    fs.rmSync(path.join(device.dataDir, f), { force: true });
}
