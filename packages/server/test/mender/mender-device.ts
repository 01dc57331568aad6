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

const hasCommand = (name: string) =>
  spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;

export const MENDER_CONNECT_PACKAGES = 'mender-connect dbus mender-cli';
/**
 * Whether this machine can run mender-connect devices: mender-client's conditions, plus mender-connect and a D-Bus
 * daemon (mender-connect asks the mender daemon for the device JWT over the system bus), and mender-cli (the
 * person's side of Mender's terminal).
 */
export const canRunMenderConnect =
  canRunMender && hasCommand('mender-connect') && hasCommand('dbus-daemon') && hasCommand('mender-cli');

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

/** Why `canRunMenderConnect` is false, for the skip message. */
export const whyMenderConnectCannotRun = !canRunMender
  ? whyMenderCannotRun
  : `install the Debian packages ${MENDER_CONNECT_PACKAGES}`;

/** A running mender-connect device: its D-Bus, mender daemon and mender-connect, in one mount namespace. */
export interface MenderConnectRun {
  child: ChildProcess;
  /** What the three printed so far. */
  output(): string;
  /** Stops the three (their process group: TERM, then KILL after 2 s) and waits for the end. */
  stop(): Promise<void>;
}

/**
 * Runs `device` as a stock Mender device with remote access: a private D-Bus system bus (a socket in the device's
 * directory, a policy that lets root own Mender's name), `mender daemon` (it serves the device JWT on
 * `io.mender.Authentication1` and proxies mender-connect's WebSocket to the server with its own TLS settings),
 * and `mender-connect daemon` with `connectConfig` merged over a root shell. All in the device's mount namespace,
 * in a process group of their own.
 */
export function startMenderConnect(
  device: MenderDevice,
  connectConfig: Record<string, unknown> = {},
): MenderConnectRun {
  const bus = path.join(device.dir, 'system_bus_socket');
  const dbusConf = path.join(device.dir, 'dbus.conf');
  fs.writeFileSync(
    dbusConf,
    [
      '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"',
      ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">',
      '<busconfig>',
      '  <type>system</type>',
      `  <listen>unix:path=${bus}</listen>`,
      '  <auth>EXTERNAL</auth>',
      '  <policy context="default">',
      '    <allow user="*"/>',
      '    <allow own="*"/>',
      '    <allow send_destination="*"/>',
      '    <allow receive_sender="*"/>',
      '  </policy>',
      '</busconfig>',
      '',
    ].join('\n'),
  );
  const conf = JSON.parse(fs.readFileSync(device.conf, 'utf8'));
  fs.writeFileSync(device.conf, JSON.stringify({ ...conf, DBus: { Enabled: true } }));
  const connectConf = path.join(device.dir, 'mender-connect.conf');
  fs.writeFileSync(
    connectConf,
    // A root shell without this machine's profile: mender-connect starts it with --login by default, and root's
    // .bashrc here runs `pyenv init` (seconds per shell, and a minute behind a rehash lock a killed shell left).
    JSON.stringify({
      ShellCommand: '/bin/bash',
      ShellArguments: ['--noprofile', '--norc'],
      User: 'root',
      ...connectConfig,
    }),
  );
  const script = [
    `mount --bind '${device.dir}/identity' /usr/share/mender/identity`,
    `mount --bind '${device.dir}/inventory' /usr/share/mender/inventory`,
    `mount --bind '${device.dir}/etc' /etc/mender`,
    `export DBUS_SYSTEM_BUS_ADDRESS='unix:path=${bus}'`,
    `rm -f '${bus}'`,
    `dbus-daemon --config-file='${dbusConf}' --nofork --nopidfile &`,
    `for i in $(seq 100); do [ -S '${bus}' ] && break; sleep 0.05; done`,
    `mender --no-syslog -c '${device.conf}' -d '${device.dataDir}' daemon &`,
    `mender-connect --config '${connectConf}' --debug daemon &`,
    'wait',
  ].join('\n');
  const child = spawn('unshare', ['-m', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  const collect = (c: Buffer) => {
    output += c.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => output,
    async stop() {
      const group = -(child.pid ?? 0);
      if (!child.pid) return;
      try {
        process.kill(group, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(group, 'SIGKILL');
        } catch {}
      }, 2000);
      await exited;
      // The shell ends first; its children (the three daemons) may still be on their way out.
      await new Promise((resolve) => setTimeout(resolve, 100));
      try {
        process.kill(group, 'SIGKILL');
      } catch {}
      clearTimeout(timer);
    },
  };
}

/** Forgets the device token the client stored, so the next bootstrap asks the server again. */
export function forgetMenderToken(device: MenderDevice): void {
  for (const f of ['mender-store', 'mender-store-lock'])
    fs.rmSync(path.join(device.dataDir, f), { force: true });
}
