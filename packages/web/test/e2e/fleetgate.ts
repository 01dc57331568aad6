import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { dropPostgresSchema } from '@fleetgate/server';
import { expect, type Page } from '@playwright/test';

/**
 * A real fleetgate for the browser tests: `fleetgate serve` in its own process (SQLite in a temporary folder, or a
 * PostgreSQL schema of its own when DATABASE_URL is set), real `fleetgate-agent` processes, and the REST API for
 * setting up what a test does not do through the UI.
 */
const repo = path.resolve(import.meta.dirname, '../../../..');
const cliBin = path.join(repo, 'packages/cli/bin/fleetgate.js');
const agentBin = path.join(repo, 'packages/agent/bin/fleetgate-agent.js');
export const ADMIN_EMAIL = 'admin@e2e.test';
export const ADMIN_PASSWORD = 'e2e admin password';

export interface Fleetgate {
  url: string;
  /** Calls the REST API as the first owner (or with `token`); answers status and JSON body. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and assert on them.
  api(method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  login(email: string, password: string): Promise<string>;
  /** Signs `page` in through the sign-in page (at `origin`, fleetgate's own URL unless told) and waits for the dashboard. */
  signIn(page: Page, email?: string, password?: string, origin?: string): Promise<void>;
  adminToken: string;
  stop(): Promise<void>;
}

export async function startFleetgate(): Promise<Fleetgate> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-e2e-'));
  const schema = `fg_e2e_${randomBytes(6).toString('hex')}`;
  const server = spawn(process.execPath, [cliBin, 'serve'], {
    env: {
      ...process.env,
      FLEETGATE_DATA_DIR: dataDir,
      FLEETGATE_HTTP_PORT: '0',
      FLEETGATE_SSH_PORT: '0',
      FLEETGATE_PROXY_PORT: '0',
      FLEETGATE_ADMIN_EMAIL: ADMIN_EMAIL,
      FLEETGATE_ADMIN_PASSWORD: ADMIN_PASSWORD,
      FLEETGATE_LOG_LEVEL: 'warn',
      // Presence reaches pages within a fifth of a second instead of a second.
      FLEETGATE_PRESENCE_FLUSH_MS: '200',
      ...(process.env.DATABASE_URL ? { FLEETGATE_DB_SCHEMA: schema } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  server.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fleetgate did not start in 90 s:\n${output}`)), 90_000);
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /fleetgate is running at (\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    server.once('exit', (code) =>
      reject(new Error(`fleetgate exited (${code}) before it started:\n${output}`)),
    );
  });

  const api: Fleetgate['api'] = async (method, route, body, token) => {
    const response = await fetch(`${url}${route}`, {
      method,
      headers: {
        ...(token === '' ? {} : { authorization: `Bearer ${token ?? adminToken}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const login = async (email: string, password: string) => {
    const answer = await api('POST', '/api/v1/auth/login', { email, password }, '');
    if (answer.status !== 200)
      throw new Error(`login ${email}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body.token as string;
  };
  let adminToken = '';
  adminToken = await login(ADMIN_EMAIL, ADMIN_PASSWORD);

  return {
    url,
    api,
    login,
    async signIn(page, email = ADMIN_EMAIL, password = ADMIN_PASSWORD, origin = url) {
      await page.goto(`${origin}/sign-in`);
      await page.getByLabel('E-mail').fill(email);
      await page.getByRole('textbox', { name: 'Password' }).fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expect(page.getByRole('heading', { name: 'Dashboard' })).toBeVisible();
    },
    adminToken,
    async stop() {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
      if (process.env.DATABASE_URL) await dropPostgresSchema(process.env.DATABASE_URL, schema);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Agent {
  dataDir: string;
  envFile: string;
  /** The uuid the agent enrolled with (from its credentials file), once it has. */
  uuid(): Promise<string>;
  /** What the agent printed so far (for a failure's message). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * A real `fleetgate-agent run`, enrolling with a provisioning key or a key pair (Mender style); `env` is added to
 * its environment (which the shells it runs inherit), `config` to its configuration file (e.g. `allowedPorts`).
 */
export function startAgent(
  serverUrl: string,
  enrollment: { provisioningKey: string } | { keyPair: { identity: Record<string, string> } },
  name?: string,
  env: Record<string, string> = {},
  /** More agent settings (agent.json), e.g. `allowedPorts`. */
  settings: Record<string, unknown> = {},
): Agent {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-e2e-agent-'));
  const envFile = path.join(dataDir, 'variables.env');
  const configFile = path.join(dataDir, 'agent.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      server: serverUrl,
      dataDir,
      enrollment,
      ...(name ? { name } : {}),
      variables: { envFile },
      stateReport: { checkInterval: 1 },
      // A pending device asks again within a second of being accepted.
      backoff: { base: 0.2, cap: 1, restartCap: 1 },
      logLevel: 'warn',
      ...settings,
    }),
  );
  let output = '';
  const child: ChildProcess = spawn(process.execPath, [agentBin, 'run', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  return {
    dataDir,
    envFile,
    output: () => output,
    async uuid() {
      const file = path.join(dataDir, 'credentials.json');
      await expect
        .poll(() => fs.existsSync(file), { message: `the agent never enrolled:\n${output}`, timeout: 30_000 })
        .toBe(true);
      return (JSON.parse(fs.readFileSync(file, 'utf8')) as { uuid: string }).uuid;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A device for a test: a real agent, enrolled in a fleet of its own and online. */
export interface Device {
  agent: Agent;
  uuid: string;
  fleetId: number;
  /** The home its shells start in: empty, the test's own. */
  home: string;
  /** Stops the agent and removes its home. */
  stop(): Promise<void>;
}

/**
 * Enrolls a real agent named `name` with a provisioning key of a new fleet `<name>-fleet`, and waits until it is
 * online. Its shells start in an empty home: a login shell reads ~/.profile, and this machine's (pyenv init) can
 * wait many seconds on a lock other processes hold. `settings` go to its agent.json (e.g. `allowedPorts`).
 */
export async function startDevice(
  fg: Fleetgate,
  name: string,
  settings: Record<string, unknown> = {},
): Promise<Device> {
  const fleet = await fg.api('POST', '/api/v1/fleets', { orgId: 1, name: `${name}-fleet` });
  expect(fleet.status, JSON.stringify(fleet.body)).toBe(201);
  const key = await fg.api('POST', `/api/v1/fleets/${fleet.body.id}/provisioning-keys`, { name });
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-e2e-home-'));
  const agent = startAgent(fg.url, { provisioningKey: key.body.key }, name, { HOME: home }, settings);
  const uuid = await agent.uuid();
  await expect
    .poll(async () => (await fg.api('GET', `/api/v1/devices/${uuid}`)).body?.status, {
      message: `the agent never came online:\n${agent.output()}`,
      timeout: 30_000,
    })
    .toBe('online');
  return {
    agent,
    uuid,
    fleetId: fleet.body.id,
    home,
    async stop() {
      await agent.stop();
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Folder of the screenshots every page leaves (kept out of git). */
export const screenshotDir = path.join(repo, 'test-results/screenshots');

/**
 * Looks at a page the way a reviewer would: a full-page screenshot into test-results/screenshots, and an axe-core
 * scan that must find no serious or critical accessibility violation.
 */
export async function inspectPage(page: Page, name: string): Promise<void> {
  await page.waitForLoadState('networkidle');
  // Scanned as a reader sees it: no pointer hovering what was just clicked, transitions done.
  await page.mouse.move(0, 0);
  await page.waitForTimeout(300);
  fs.mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
  // With a dialog open, the page behind it is dimmed by the overlay and out of reach: the dialog is what is read.
  const dialogOpen = (await page.getByRole('dialog').count()) > 0;
  const axe = new AxeBuilder({ page });
  const results = await (dialogOpen ? axe.include('[role="dialog"]') : axe).analyze();
  const serious = results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map(
      (v) =>
        `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => `${n.target.join(' ')} (${n.failureSummary ?? ''})`).join('; ')}`,
    );
  expect(serious, `accessibility of ${name}`).toEqual([]);
}
