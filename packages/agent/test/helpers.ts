import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, type AgentOptions } from '../src/agent.ts';
import { type AgentConfig, parseConfig } from '../src/config.ts';
import { writeCredentials } from '../src/credentials.ts';
import { createLogger } from '../src/log.ts';
import type { TunnelStopReason } from '../src/tunnel.ts';

/**
 * The environment of the test agents' commands and shells: a HOME without dotfiles, so that a command does not
 * run this machine's `~/.bashrc` (bash reads it when its input is a socket, as it is under the agent). Seen: a
 * shell killed while `pyenv init` in root's `.bashrc` held pyenv's lock left every later shell waiting on it.
 */
export const shellEnv = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-test-home-')),
  LANG: 'C',
};

/** A fresh temporary directory, removed by `removeTemporaryDirs`. */
const temporaryDirs: string[] = [];
export function temporaryDir(prefix = 'fleetgate-agent-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temporaryDirs.push(dir);
  return dir;
}
export function removeTemporaryDirs(): void {
  for (const dir of temporaryDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** Test settings: short intervals, a temporary data dir; `file` is the config file's content (seconds). */
export function testConfig(serverUrl: string, file: Record<string, unknown> = {}): AgentConfig {
  return parseConfig({
    server: serverUrl,
    dataDir: temporaryDir(),
    deviceType: 'generic-amd64',
    backoff: { base: 0.05, cap: 0.5, stableAfter: 30 },
    liveness: { interval: 30, timeout: 10 },
    stateReport: { checkInterval: 30, maxInterval: 300 },
    logLevel: 'silent',
    ...file,
  });
}

export interface RunningAgent {
  agent: Agent;
  config: AgentConfig;
  uuid: string;
  /** Resolves when `run()` ends. */
  done: Promise<TunnelStopReason>;
  stop(): Promise<void>;
}

/** An agent with device-key credentials already stored (as after enrollment), running against `serverUrl`. */
export function runAgent(
  serverUrl: string,
  file: Record<string, unknown> = {},
  extra: Partial<AgentOptions> = {},
): RunningAgent {
  const config = testConfig(serverUrl, file);
  const uuid = randomBytes(16).toString('hex');
  writeCredentials(config.dataDir, {
    type: 'device-key',
    uuid,
    deviceKey: randomBytes(32).toString('hex'),
    registered: true,
  });
  const agent = new Agent({
    ...config,
    agentVersion: '0.1.0-test',
    baseEnv: shellEnv,
    log: createLogger((process.env.FLEETGATE_TEST_LOG_LEVEL as 'debug' | undefined) ?? 'silent'),
    ...extra,
  });
  const done = agent.run();
  return { agent, config, uuid, done, stop: () => agent.stop() };
}

/**
 * A real agent in this process that enrolls with `provisioningKey` (generating its uuid and key), then runs;
 * resolves once `online(uuid)` (the server's view of the device) says it is connected.
 */
export async function enrollAgent(
  serverUrl: string,
  provisioningKey: string,
  options: {
    agentVersion: string;
    allowedPorts?: number[];
    /** The environment of commands and shells the agent runs (default: PATH, HOME and LANG=C of this process). */
    baseEnv?: Record<string, string>;
  },
  online: (uuid: string) => Promise<boolean>,
): Promise<{ agent: Agent; uuid: string }> {
  const agent = new Agent({
    ...testConfig(serverUrl, {
      provisioningKey,
      ...(options.allowedPorts ? { allowedPorts: options.allowedPorts } : {}),
    }),
    agentVersion: options.agentVersion,
    baseEnv: options.baseEnv ?? shellEnv,
    log: createLogger((process.env.FLEETGATE_TEST_LOG_LEVEL as 'debug' | undefined) ?? 'silent'),
  });
  const credentials = await agent.enroll();
  if (credentials.type !== 'device-key') throw new Error('expected a device key');
  void agent.run();
  await waitFor(() => online(credentials.uuid), 10_000, 'the device to be online');
  return { agent, uuid: credentials.uuid };
}

/** Polls `check` until it answers a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
