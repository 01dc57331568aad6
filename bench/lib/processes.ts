/**
 * Processes and ports, shared by the benchmarks that start real programs (bench/ssh, bench/tunnel): waiting
 * for something, a free port, child processes ended whatever happens, and a real fleetgate-agent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_BIN, nodeFlagsOf } from './bins.ts';
import { api } from './server-process.ts';

/** The repository's root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls `probe` every 100 ms until it answers something (a rejection counts as nothing); throws at the deadline. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** `true` when 127.0.0.1:`port` accepts a connection, else `undefined` (for `until`). */
export function accepts(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(undefined));
  });
}

/** Child processes started by the bench, ended in `finally` whatever happens (`killChildren`). */
const children = new Set<ChildProcess>();

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Kills (SIGKILL) every tracked child process still running. */
export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

/**
 * Enrolls a real fleetgate-agent process with a provisioning key, allowed to reach `ports`; answers the
 * process and the device's uuid once it is online. `env` is set over the bench's own environment.
 */
export async function startAgent(
  base: string,
  session: string,
  fleetId: number,
  dir: string,
  ports: number[],
  env: NodeJS.ProcessEnv = {},
) {
  const { key } = await api(base, 'POST', `/api/v1/fleets/${fleetId}/provisioning-keys`, session, {
    name: 'bench agent',
  });
  const configFile = path.join(dir, 'agent.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      server: base,
      dataDir: path.join(dir, 'agent-data'),
      deviceType: 'generic-amd64',
      provisioningKey: key,
      allowedPorts: ports,
    }),
  );
  const agent = track(
    spawn(process.execPath, [...nodeFlagsOf(AGENT_BIN), AGENT_BIN, 'run', '--config', configFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    }),
  );
  agent.stdout.resume();
  const uuid = await until('the agent to enroll and connect', 60_000, async () => {
    const page = await api(base, 'GET', `/api/v1/devices?fleetId=${fleetId}&status=online`, session);
    return page.items[0]?.uuid as string | undefined;
  });
  return { agent, uuid };
}
