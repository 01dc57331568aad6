import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { writeSshdConfig } from '../ssh/openssh-tools.ts';

/**
 * Real OpenVPN clients for tests, as balenaOS devices run them: each client in a Linux network namespace of its
 * own (so each has its own `resin-vpn` tun device, routes and services), reaching OpenVPN servers in the root
 * namespace over a bridge, and the root namespace reaching the services inside (a web server, sshd) through the
 * client's VPN address. Needs root, Debian's `openvpn` and `iproute2`, and /dev/net/tun.
 *
 * The network, shared by every test process on the machine (Vitest runs test files in parallel processes, and
 * other worktrees' runs may share the machine):
 * - One bridge, {@link BRIDGE} with {@link BRIDGE_ADDRESS}/16, in the root namespace. It is made by whoever needs
 *   it first (an `EEXIST` from a racing process is fine) and never removed: it holds no state of a run, and
 *   removing it under a parallel run would cut that run's namespaces off.
 * - Each process claims a **slot** from 1 to {@link MAX_SLOT} by binding the abstract Unix socket
 *   `@fleetgate-netns-slot-<n>`: exclusive, and released by the kernel when the process ends, however it ends
 *   (`/run/fleetgate-netns/slot-<n>` names the holder's pid for people). Everything the process makes carries the
 *   slot: namespaces `fgns<slot>-<prefix><serial>`, root-side veths `fgv<slot>-<serial>`, bridge addresses from
 *   172.30.<4·slot>.0/22 (up to {@link MAX_NAMESPACES} namespaces per process), a VPN subnet for servers
 *   ({@link workerNetwork}: 10.<200+slot>.0.0/16, below the product's default 10.240.0.0/12) and its temporary
 *   files under /tmp/fleetgate-netns-<slot>. Two processes never pick the same names or addresses.
 * - What a run killed before its `afterAll` left is swept by the next process that starts, slot by slot while
 *   holding the slot (so never under a live user): the processes inside its namespaces and the root-namespace
 *   processes it recorded (pid and start time must both match, so a reused pid is left alone) are killed, its
 *   namespaces, veths and files removed.
 *
 * A test file calls {@link destroyAll} in `afterAll`: it kills every process started here and removes every
 * namespace, also when a test failed.
 */

/** The bridge every namespace's veth joins, in the root namespace. */
export const BRIDGE = 'fgvpn0';
/** The root namespace's address on {@link BRIDGE}: where namespaces reach servers in the root namespace. */
export const BRIDGE_ADDRESS = '172.30.0.1';
/** Slots 1–39: VPN subnets 10.201–10.239 stay clear of the product's 10.240.0.0/12. */
const MAX_SLOT = 39;
/** Namespaces one process can make over its life: 1000 of the 1024 bridge addresses of its /22. */
export const MAX_NAMESPACES = 1000;
/** Who holds each slot (`slot-<n>`: pid and start time) and the root-namespace processes it started (`slot-<n>.pids`). */
const LOCKS = '/run/fleetgate-netns';
/** How many `ip -n <ns> -batch` run at once while configuring namespaces (the machine has 2 cores). */
const CONFIGURE_CONCURRENCY = 4;

/** The Debian package of each program the OpenVPN tests run. */
const PROGRAMS = { openvpn: 'openvpn', ip: 'iproute2' } as const;

/**
 * Why the OpenVPN namespace tests cannot run here (what to install or change), or undefined when they can: the
 * `openvpn` and `ip` programs, /dev/net/tun, and the right to make a network namespace (root), which it tries.
 */
export function openvpnToolsMissing(): string | undefined {
  const missing = Object.entries(PROGRAMS).filter(
    ([program]) => spawnSync('sh', ['-c', `command -v ${program}`]).status !== 0,
  );
  if (missing.length) {
    return `install the Debian packages ${missing.map(([, pkg]) => pkg).join(' ')} (for ${missing.map(([p]) => p).join(', ')})`;
  }
  if (!fs.existsSync('/dev/net/tun'))
    return 'no /dev/net/tun (load the tun module, or give the container the device)';
  const probe = `fgprobe-${process.pid}`;
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (added.status !== 0) return `cannot make a network namespace (run as root): ${added.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

/** What this process may use of the shared network (see the module's comment). */
export interface WorkerNetwork {
  slot: number;
  /** A /16 for a fixture OpenVPN server's addresses, e.g. `10.203.0.0`; no other process uses it. */
  vpnSubnet: string;
  /** A directory for this process's temporary files, removed by {@link destroyAll}. */
  dir: string;
}

/** A network namespace with a veth on {@link BRIDGE}. */
export interface Namespace {
  /** As `ip netns` knows it. */
  name: string;
  /** Its address on the bridge (a /16 with {@link BRIDGE_ADDRESS}, its default route). */
  address: string;
  /** Starts `command` inside the namespace (`ip netns exec`, which execs it: the child's pid is the command's). */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /**
   * Pulls its cable (`eth0` down): nothing leaves or arrives, and no connection is told (a power cut, a dead
   * mobile link, as the server sees it). `plug()` puts it back.
   */
  unplug(): Promise<void>;
  plug(): Promise<void>;
  /** Kills every process inside and removes the namespace and its veth; resolves once the veth is gone. */
  destroy(): Promise<void>;
}

// The state of this process's harness: its slot, its namespaces and the processes it started. One test file runs
// per process; `destroyAll` empties it.
let claimed: Promise<WorkerNetwork> | undefined;
let claimedNow: WorkerNetwork | undefined;
/** The slot's abstract socket: held while this process uses the slot (see claimSlot). */
let slotHolder: net.Server | undefined;
let serial = 0;
let serverSerial = 0;
const namespaces = new Map<string, { veth: string }>();
const started = new Set<ChildProcess>();

/** This process's slot, subnet and directory; claims the slot (after sweeping dead runs' leftovers) and makes the bridge the first time. */
export function workerNetwork(): Promise<WorkerNetwork> {
  claimed ??= claimSlot().catch((error: unknown) => {
    claimed = undefined;
    throw error;
  });
  return claimed;
}

/**
 * Makes `count` namespaces named `fgns<slot>-<prefix><serial>`, each with `lo` up, a veth `eth0` on the bridge
 * with the next free address and a default route via {@link BRIDGE_ADDRESS}. A few `ip` processes in all: one
 * `ip -batch` in the root namespace adds the namespaces and veths, then one `ip -n <ns> -batch` per namespace
 * configures its inside (`ip -batch` runs no command in another namespace), a few at a time.
 */
export async function createNamespaces(count: number, prefix = 'ns'): Promise<Namespace[]> {
  if (!/^[a-z0-9]{0,16}$/.test(prefix))
    throw new Error(`namespace prefix "${prefix}": use up to 16 of a-z 0-9`);
  const network = await workerNetwork();
  if (serial + count > MAX_NAMESPACES) {
    throw new Error(
      `${serial + count} namespaces in one process: the harness has addresses for ${MAX_NAMESPACES}`,
    );
  }
  const made: { name: string; veth: string; address: string; mac: string }[] = [];
  for (let i = 0; i < count; i++) {
    const n = serial++;
    const host = network.slot * 1024 + n + 1;
    const [high, low] = [host >> 8, host & 255];
    made.push({
      name: `fgns${network.slot}-${prefix}${n}`,
      veth: `fgv${network.slot}-${n}`,
      address: `172.30.${high}.${low}`,
      // The next holder of the slot reuses the address: with the same MAC, whatever the root namespace's
      // neighbour table still holds for it stays right (a new MAC was unreachable for the seconds until the
      // kernel probed the old one out, and a test file starting then could not reach its own namespace).
      mac: ['02', '66', '67', 30, high, low].map((byte) => byte.toString(16).padStart(2, '0')).join(':'),
    });
  }
  try {
    await ipBatch(
      [],
      made.flatMap(({ name, veth, mac }) => [
        `netns add ${name}`,
        `link add ${veth} type veth peer name eth0 address ${mac} netns ${name}`,
        `link set ${veth} master ${BRIDGE} up`,
      ]),
    );
    for (const entry of made) namespaces.set(entry.name, { veth: entry.veth });
    const queue = [...made];
    const configure = async () => {
      for (let entry = queue.shift(); entry; entry = queue.shift()) {
        await ipBatch(
          ['-n', entry.name],
          [
            'link set lo up',
            `addr add ${entry.address}/16 dev eth0`,
            'link set eth0 up',
            `route add default via ${BRIDGE_ADDRESS}`,
          ],
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONFIGURE_CONCURRENCY, made.length) }, configure));
  } catch (error) {
    // Some may exist (an `ip -batch` stops at its first error): none is left half made.
    await removeNamespaces(
      made.map(({ name }) => name),
      made.map(({ veth }) => veth),
    );
    for (const { name } of made) namespaces.delete(name);
    throw error;
  }
  return made.map(({ name, veth, address }) => ({
    name,
    address,
    unplug: async () => {
      await run('ip', ['-n', name, 'link', 'set', 'eth0', 'down']);
    },
    plug: async () => {
      await run('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    },
    spawn: (command, args, options = {}) =>
      track(spawn('ip', ['netns', 'exec', name, command, ...args], options)),
    destroy: async () => {
      await removeNamespaces([name], [veth]);
      namespaces.delete(name);
    },
  }));
}

/**
 * Starts `command` in the root namespace, recorded for this slot so that {@link destroyAll} — or, after a killed
 * run, the next run's sweep — ends it. For the fixture servers the tests run beside the namespaces.
 */
export function spawnInRoot(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  const child = track(spawn(command, args, options));
  const { slot } = requireClaimed();
  if (child.pid !== undefined) {
    const start = startTime(child.pid);
    if (start) fs.appendFileSync(path.join(LOCKS, `slot-${slot}.pids`), `${child.pid} ${start}\n`);
  }
  return child;
}

/** A tun device name no other server of this process (or of another) uses: `fgtun<slot>x<n>`. */
export function tunName(): string {
  return `fgtun${requireClaimed().slot}x${serverSerial++}`;
}

/**
 * Kills every process started through this module (SIGKILL: nothing of theirs needs a graceful end here) and in
 * this process's namespaces, removes those namespaces, their veths and the temporary files, and frees the slot.
 * Never throws on something already gone.
 */
export async function destroyAll(): Promise<void> {
  const network = await claimed?.catch(() => undefined);
  if (!network) return;
  await Promise.all([...started].map((child) => killAndWait(child, 'SIGKILL')));
  await removeNamespaces(
    [...namespaces.keys()],
    [...namespaces.values()].map(({ veth }) => veth),
  );
  namespaces.clear();
  fs.rmSync(network.dir, { recursive: true, force: true });
  fs.rmSync(path.join(LOCKS, `slot-${network.slot}.pids`), { force: true });
  fs.rmSync(path.join(LOCKS, `slot-${network.slot}`), { force: true });
  // Last: the slot is free once nothing of it is left.
  slotHolder?.close();
  slotHolder = undefined;
  claimed = undefined;
  claimedNow = undefined;
}

/** What {@link startOpenvpnClient} needs: the configuration a balenaOS device is served, and its credentials. */
export interface OpenvpnClientOptions {
  /** The OpenVPN client configuration as served to the device (its `ca` and `auth-user-pass` paths are rewritten). */
  config: string;
  /** The device's uuid. */
  username: string;
  /** The device's API key. */
  password: string;
  /** The CA certificate (PEM) that signed the server's certificate. */
  ca: string;
  /**
   * Arguments after `--config <file>`, as the device's service adds them: balenaOS's `openvpn.service` runs
   * `openvpn … --config /etc/openvpn/openvpn.conf --connect-retry 5 120`. Default none.
   */
  args?: readonly string[];
}

/** How an OpenVPN client process ended. */
export interface OpenvpnExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The whole log so far (an authentication refusal shows as `AUTH_FAILED`). */
  log: string;
}

/** A real `openvpn` client in a namespace. */
export interface OpenvpnClient {
  namespace: Namespace;
  /**
   * Resolves with the client's VPN address once it is connected (its log's `Initialization Sequence Completed`,
   * not followed by a restart); rejects, with the log, when the process ends first or after `timeoutMs`
   * (default 20 000 ms).
   */
  connected(timeoutMs?: number): Promise<string>;
  /** Resolves once the client has lost its connection (it restarts, or it ended); rejects after `timeoutMs` (default 20 000 ms). */
  disconnected(timeoutMs?: number): Promise<void>;
  /** Settles when the current process ends (it never rejects; an `AUTH_FAILED` ends it with code 0). */
  readonly exited: Promise<OpenvpnExit>;
  /** Sends `signal` (default SIGTERM) and resolves once the process ended. */
  kill(signal?: NodeJS.Signals): Promise<OpenvpnExit>;
  /** Everything the client printed, over all its restarts. */
  log(): string;
  /** The VPN address while the client is connected (what `connected()` would answer at once), else undefined. */
  readonly address: string | undefined;
  /** The current `openvpn` process's pid (for its CPU time); undefined when it could not start. */
  readonly pid: number | undefined;
  /**
   * Ends the process with `signal` (default SIGTERM; SIGKILL for a device losing power) and starts a new one with
   * the same files at once.
   */
  restart(signal?: NodeJS.Signals): Promise<void>;
}

/** Lines of the served configuration that point at balenaOS files and mean nothing here. */
const BALENA_ONLY = new Set(['user', 'group', 'up', 'down']);

/**
 * Runs `openvpn --config` inside `namespace` with the configuration a balenaOS device is served, changed only as
 * a device's filesystem differs from ours: `ca` names a file holding `options.ca`, `auth-user-pass` a two-line
 * file (uuid, key), and the `user`, `group`, `up` and `down` lines (balenaOS accounts and scripts) are dropped.
 */
export async function startOpenvpnClient(
  namespace: Namespace,
  options: OpenvpnClientOptions,
): Promise<OpenvpnClient> {
  const network = await workerNetwork();
  const dir = fs.mkdtempSync(path.join(network.dir, `openvpn-${namespace.name}-`));
  const caFile = path.join(dir, 'ca.crt');
  const authFile = path.join(dir, 'vpn-auth');
  const configFile = path.join(dir, 'client.conf');
  const seen = new Set<string>();
  const lines = options.config.split('\n').flatMap((line) => {
    const directive = line.trim().split(/\s+/)[0] ?? '';
    seen.add(directive);
    if (BALENA_ONLY.has(directive)) return [];
    if (directive === 'ca') return [`ca ${caFile}`];
    if (directive === 'auth-user-pass') return [`auth-user-pass ${authFile}`];
    return [line];
  });
  for (const needed of ['ca', 'auth-user-pass']) {
    if (!seen.has(needed))
      throw new Error(`the client configuration has no "${needed}" line:\n${options.config}`);
  }
  fs.writeFileSync(caFile, options.ca);
  fs.writeFileSync(authFile, `${options.username}\n${options.password}\n`, { mode: 0o600 });
  fs.writeFileSync(configFile, lines.join('\n'));

  let log = '';
  let child: ChildProcess;
  let exited: Promise<OpenvpnExit>;
  // The client's state as its log tells it, with the VPN address of the last PUSH_REPLY.
  let state: 'connecting' | 'connected' | 'lost' | 'ended' = 'connecting';
  let pushedAddress = '';
  let address = '';
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const listener of listeners) listener();
  };
  const onLine = (line: string) => {
    const pushed = /PUSH_REPLY.*,ifconfig (\d+\.\d+\.\d+\.\d+) /.exec(line);
    if (pushed?.[1]) pushedAddress = pushed[1];
    if (line.includes('Initialization Sequence Completed')) {
      state = 'connected';
      address = pushedAddress;
    } else if (
      state === 'connected' &&
      /Connection reset|process restarting|SIGUSR1\[|SIGHUP\[|Inactivity timeout/.test(line)
    ) {
      state = 'lost';
    }
  };
  const start = () => {
    state = 'connecting';
    pushedAddress = '';
    child = namespace.spawn('openvpn', ['--config', configFile, ...(options.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    const take = (chunk: Buffer) => {
      const text = chunk.toString();
      log += text;
      partial += text;
      const complete = partial.split('\n');
      partial = complete.pop() ?? '';
      for (const line of complete) onLine(line);
      changed();
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    exited = new Promise((resolve) => {
      // 'close', not 'exit': the process may exit before its last output was read.
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        state = 'ended';
        changed();
        resolve({ code, signal, log });
      });
      child.once('error', (error) => {
        log += `\n${error.message}\n`;
        state = 'ended';
        changed();
        resolve({ code: null, signal: null, log });
      });
    });
  };
  // Settles once `check` answers true (resolve) or an Error (reject); checked after every chunk of log and at the end.
  const until = (check: () => boolean | Error, timeoutMs: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(listener);
        reject(new Error(`${namespace.name}: no ${what} in ${timeoutMs} ms; the client's log:\n${log}`));
      }, timeoutMs);
      const listener = () => {
        const answer = check();
        if (answer === false) return;
        clearTimeout(timer);
        listeners.delete(listener);
        if (answer === true) resolve();
        else reject(answer);
      };
      listeners.add(listener);
      listener();
    });
  start();
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    await killAndWait(child, signal);
    return exited;
  };
  return {
    namespace,
    connected: async (timeoutMs = 20_000) => {
      await until(
        () =>
          state === 'connected' ||
          (state === 'ended' &&
            new Error(`${namespace.name}: the client ended before connecting; its log:\n${log}`)),
        timeoutMs,
        'connection',
      );
      return address;
    },
    disconnected: (timeoutMs = 20_000) =>
      until(() => state === 'lost' || state === 'ended', timeoutMs, 'disconnection'),
    get exited() {
      return exited;
    },
    kill,
    log: () => log,
    get address() {
      return state === 'connected' ? address : undefined;
    },
    get pid() {
      return child.pid;
    },
    restart: async (signal: NodeJS.Signals = 'SIGTERM') => {
      await kill(signal);
      log += `\n----- restarted by the test -----\n`;
      start();
    },
  };
}

/** A small server the test started inside a namespace. */
export interface NamespaceService {
  port: number;
  stop(): Promise<void>;
}

/**
 * An HTTP server inside `namespace` on every address, port `port`, answering every request `hello from <name>`
 * (Node, the same program as the test's). Resolves once it listens.
 */
export async function serveHttp(namespace: Namespace, port: number): Promise<NamespaceService> {
  const program = `
    const [name, port] = process.argv.slice(1);
    require('node:http').createServer((request, response) => response.end('hello from ' + name))
      .listen(Number(port), '0.0.0.0', () => console.log('listening'));`;
  const child = namespace.spawn(process.execPath, ['-e', program, namespace.name, String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const take = (chunk: Buffer) => {
      output += chunk;
      if (output.includes('listening')) resolve();
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.once('exit', (code) =>
      reject(new Error(`the web server in ${namespace.name} exited (${code}): ${output}`)),
    );
  });
  return { port, stop: () => killAndWait(child, 'SIGTERM') };
}

/**
 * A real OpenSSH `sshd` inside `namespace` on every address, port `port`, with a new host key, signing in with
 * the keys in `authorizedKeysFile` only (the configuration test/ssh's sshd uses). Resolves once it accepts
 * connections on the namespace's bridge address.
 */
export async function startSshd(
  namespace: Namespace,
  port: number,
  authorizedKeysFile: string,
): Promise<NamespaceService> {
  const dir = fs.mkdtempSync(path.join((await workerNetwork()).dir, `sshd-${namespace.name}-`));
  const config = await writeSshdConfig(
    dir,
    port,
    'host_key',
    [`AuthorizedKeysFile ${authorizedKeysFile}`, 'UsePAM no', 'StrictModes no'],
    '0.0.0.0',
  );
  const child = namespace.spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk));
  try {
    await untilAnswering(namespace.address, port);
  } catch (error) {
    throw new Error(`sshd in ${namespace.name} (exit ${child.exitCode}): ${output}`, { cause: error });
  }
  return { port, stop: () => killAndWait(child, 'SIGTERM') };
}

// --- Inside the harness ---------------------------------------------------------------------------------------

function requireClaimed(): WorkerNetwork {
  if (!claimedNow) throw new Error('call workerNetwork() (or createNamespaces) first');
  return claimedNow;
}

/**
 * Claims the lowest free slot, and sweeps what dead owners left in every free slot on the way. Holding a slot is
 * holding an abstract Unix socket, `@fleetgate-netns-slot-<n>`: binding it is exclusive, and the kernel releases
 * it when the process ends however it ends, so a slot is never held by a dead process and a slot bound here
 * belongs to nobody else. What is cleaned is cleaned only while held: no other process can be using it.
 */
async function claimSlot(): Promise<WorkerNetwork> {
  fs.mkdirSync(LOCKS, { recursive: true });
  await ensureBridge();
  await deleteDeadProbes();
  let mine: { slot: number; holder: net.Server } | undefined;
  for (let slot = 1; slot <= MAX_SLOT; slot++) {
    const holder = await hold(slot);
    if (!holder) continue;
    // A lock file naming another live process: a harness of an earlier version holds the slot by that file alone.
    const lock = path.join(LOCKS, `slot-${slot}`);
    const owner = readOrEmpty(lock);
    if (isRunning(owner) && Number(owner.split(' ')[0]) !== process.pid) {
      holder.close();
      continue;
    }
    await sweepSlot(slot);
    if (mine) {
      if (readOrEmpty(lock) === owner) fs.rmSync(lock, { force: true });
      holder.close();
      continue;
    }
    // For people (and earlier harnesses): who holds the slot.
    fs.writeFileSync(lock, `${process.pid} ${startTime(process.pid)}\n`);
    mine = { slot, holder };
  }
  if (!mine) throw new Error(`all ${MAX_SLOT} slots are held by live processes`);
  const { slot, holder } = mine;
  const dir = `/tmp/fleetgate-netns-${slot}`;
  fs.mkdirSync(dir, { recursive: true });
  claimedNow = { slot, vpnSubnet: `10.${200 + slot}.0.0`, dir };
  slotHolder = holder;
  serial = 0;
  return claimedNow;
}

/** Binds slot `slot`'s abstract socket; undefined when another process holds it. */
function hold(slot: number): Promise<net.Server | undefined> {
  return new Promise((resolve, reject) => {
    const holder = net.createServer();
    holder.once('error', (error: NodeJS.ErrnoException) =>
      error.code === 'EADDRINUSE' ? resolve(undefined) : reject(error),
    );
    // The leading NUL makes it abstract: no file, gone with the process.
    holder.listen(`\0fleetgate-netns-slot-${slot}`, () => {
      holder.unref();
      resolve(holder);
    });
  });
}

/**
 * Removes what an earlier holder of `slot` left (it is gone: the caller holds the slot): the root-namespace
 * processes it recorded (pid and start time must both match, so a reused pid is left alone), the processes in its
 * namespaces, the namespaces, their veths and its files.
 */
async function sweepSlot(slot: number): Promise<void> {
  const lock = path.join(LOCKS, `slot-${slot}`);
  for (const line of readOrEmpty(`${lock}.pids`).split('\n')) {
    if (isRunning(line)) process.kill(Number(line.split(' ')[0]), 'SIGKILL');
  }
  const netnsNames = fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : [];
  // Waiting for the veths keeps this process from meeting a name the kernel is still tearing down.
  await removeNamespaces(
    netnsNames.filter((name) => name.startsWith(`fgns${slot}-`)),
    fs.readdirSync('/sys/class/net').filter((link) => link.startsWith(`fgv${slot}-`)),
  );
  fs.rmSync(`/tmp/fleetgate-netns-${slot}`, { recursive: true, force: true });
  fs.rmSync(`${lock}.pids`, { force: true });
}

/** openvpnToolsMissing's probe namespaces whose process died between adding and deleting them. */
async function deleteDeadProbes(): Promise<void> {
  const netnsNames = fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : [];
  for (const name of netnsNames) {
    const pid = /^fgprobe-(\d+)$/.exec(name)?.[1];
    if (pid && !fs.existsSync(`/proc/${pid}`)) await run('ip', ['netns', 'del', name], '', true);
  }
}

/** The bridge, its address and its state up; a racing process making it at the same time is fine. */
async function ensureBridge(): Promise<void> {
  // -force: carry on past "File exists" (made by an earlier run or a parallel process).
  await run(
    'ip',
    ['-force', '-batch', '-'],
    [
      `link add ${BRIDGE} type bridge`,
      `addr add ${BRIDGE_ADDRESS}/16 dev ${BRIDGE}`,
      `link set ${BRIDGE} up`,
    ].join('\n'),
    true,
  );
  const shown = await run('ip', ['-o', '-4', 'addr', 'show', 'dev', BRIDGE]);
  if (!shown.includes(`${BRIDGE_ADDRESS}/16`))
    throw new Error(`the bridge ${BRIDGE} has no ${BRIDGE_ADDRESS}/16: ${shown}`);
}

/**
 * Kills every process inside the namespaces, deletes them, and waits until their veths are gone. Deleting the
 * namespaces is what removes the veths, and far faster than deleting each veth (250: 0.2 s against 7.7 s here):
 * the kernel tears many namespaces down in one go. But a namespace outlives its last process while one of its
 * TCP sockets is still closing (a connection whose FIN can no longer leave once the OpenVPN client that carried it
 * is dead retransmits for minutes), so a veth still there after a moment is deleted by name.
 */
async function removeNamespaces(names: readonly string[], veths: readonly string[]): Promise<void> {
  if (!names.length && !veths.length) return;
  const inodes = new Set<string>();
  for (const name of names) {
    try {
      inodes.add(`net:[${fs.statSync(`/run/netns/${name}`).ino}]`);
    } catch {}
  }
  for (const pid of processesIn(inodes)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  // A namespace lives on while a process is in it; a killed process leaves it as it exits.
  if (!(await waitUntil(() => processesIn(inodes).length === 0, 10_000))) {
    throw new Error(`processes in ${names[0]}… did not end on SIGKILL: ${processesIn(inodes).join(' ')}`);
  }
  if (names.length) {
    await ipBatch(
      ['-force'],
      names.map((name) => `netns del ${name}`),
      true,
    );
  }
  const left = () => veths.filter((veth) => fs.existsSync(`/sys/class/net/${veth}`));
  if (await waitUntil(() => left().length === 0, 1000)) return;
  await ipBatch(
    ['-force'],
    left().map((veth) => `link del ${veth}`),
    true,
  );
  if (!(await waitUntil(() => left().length === 0, 10_000)))
    throw new Error(`the veths ${left().join(' ')} stay`);
}

/** Pids of the processes whose network namespace is one of `inodes` (`net:[…]`, as /proc/<pid>/ns/net reads). */
function processesIn(inodes: ReadonlySet<string>): number[] {
  if (!inodes.size) return [];
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (inodes.has(fs.readlinkSync(`/proc/${entry}/ns/net`))) pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

/** The start time of `pid` (field 22 of /proc/<pid>/stat, in clock ticks since boot), '' when it is gone. */
function startTime(pid: number): string {
  const stat = readOrEmpty(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

/** Whether `record` (`<pid> <start time>`) names a process still running: a pid reused since does not count. */
function isRunning(record: string): boolean {
  const [pid, start] = record.trim().split(' ');
  return Boolean(pid && start && startTime(Number(pid)) === start);
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function track(child: ChildProcess): ChildProcess {
  started.add(child);
  child.once('exit', () => started.delete(child));
  // A program that cannot start must fail its test, not the process (an unhandled 'error' would).
  child.once('error', () => started.delete(child));
  return child;
}

function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** `ip [options] -batch -` with `commands` on its standard input; throws with `ip`'s errors unless `tolerant`. */
function ipBatch(options: readonly string[], commands: readonly string[], tolerant = false): Promise<string> {
  return run('ip', [...options, '-batch', '-'], `${commands.join('\n')}\n`, tolerant);
}

function run(file: string, args: readonly string[], input = '', tolerant = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0 || tolerant) resolve(stdout);
      else reject(new Error(`${file} ${args.join(' ')} (exit ${code}): ${stderr.trim()}`));
    });
    // A program that fails before reading its input closes the pipe: its exit code and stderr tell why.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** Whether `check` came true within `timeoutMs`. */
async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

/** A TCP port no one listens on now at `host` (for a server the caller is about to start there). */
export function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Resolves once `host`:`port` accepts a TCP connection (or rejects after `timeoutMs`). */
export async function untilAnswering(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const answered = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port, timeout: 1000 }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
      socket.on('timeout', () => {
        socket.destroy();
        resolve(false);
      });
    });
    if (answered) return;
    if (performance.now() > deadline)
      throw new Error(`nothing answers at ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
