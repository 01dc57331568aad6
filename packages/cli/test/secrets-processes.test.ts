/**
 * Secret variables' sealing key as an operator meets it, with the real programs: `fleetgate serve` refuses to
 * start without the key that sealed the secrets (exit 2, saying what to restore), `fleetgate secrets rotate`
 * re-seals them while the server is stopped, and the restarted server still serves them. SQLite, or
 * PostgreSQL with DATABASE_URL.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi, cliBin, eventually, freePort, Processes, type Running } from './processes.ts';

const ADMIN = { email: 'admin@secrets.test', password: 'secrets-test-password' };

let processes: Processes;
let port: number;
let base: string;
let serverEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  processes = new Processes();
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const webRoot = path.join(processes.dir, 'web');
  fs.mkdirSync(webRoot);
  fs.writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>fleetgate</title>');
  serverEnv = { FLEETGATE_WEB_ROOT: webRoot };
});

afterAll(async () => {
  await processes?.cleanUp();
});

async function serve(): Promise<Running> {
  const server = processes.serve(port, ADMIN, serverEnv);
  await eventually(
    'the server to answer',
    async () => (await fetch(`${base}/readyz`)).ok || undefined,
    20_000,
  );
  return server;
}

async function stop(server: Running): Promise<void> {
  const exited = once(server.child, 'exit');
  server.child.kill('SIGTERM');
  await exited;
}

/** Runs the CLI to its end: its exit code and what it printed. */
async function fleetgate(args: string[]): Promise<{ code: number | null; output: string }> {
  const run = processes.start(cliBin, args);
  const [code] = (await once(run.child, 'exit')) as [number | null];
  return { code, output: run.output() };
}

const databaseArgs = () =>
  processes.databaseUrl ? ['--database-url', processes.databaseUrl, '--db-schema', processes.schema] : [];

describe('the key sealing secret variables', () => {
  it('is required at start (exit 2, what to restore), rotated offline, and the secrets stay set', async () => {
    let server = await serve();
    const { token } = await callApi(base, undefined, 'POST', '/api/v1/auth/login', ADMIN);
    const api = (method: string, url: string, body?: unknown) => callApi(base, token, method, url, body);
    const org = (await api('GET', '/api/v1/orgs')).items[0];
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: org.id,
      name: 'sealed',
      defaultDeviceType: 'generic-amd64',
    });
    await api('PUT', `/api/v1/fleets/${fleet.id}/variables/API_TOKEN`, { value: 'tok-123', secret: true });
    await stop(server);

    const dataDir = path.join(processes.dir, 'server');
    const keyFile = path.join(dataDir, 'keys', 'secrets.json');
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    const saved = fs.readFileSync(keyFile);
    fs.renameSync(keyFile, `${keyFile}.away`);
    const refused = processes.serve(port, ADMIN, serverEnv);
    const [code] = await once(refused.child, 'exit');
    expect(code).toBe(2);
    expect(refused.output()).toMatch(
      /cannot open the secret variables: .*sealed with key [0-9a-f]{16}.*Restore .*secrets\.json from the backup/,
    );
    expect(fs.existsSync(keyFile)).toBe(false);
    fs.writeFileSync(keyFile, saved, { mode: 0o600 });

    const rotated = await fleetgate(['secrets', 'rotate', '--data-dir', dataDir, ...databaseArgs()]);
    expect(rotated.output).toMatch(/^re-sealed 1 secret value with key [0-9a-f]{16} \(.*secrets\.json\)\n$/);
    expect(rotated.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(keyFile, 'utf8')).keys).toHaveLength(2);

    server = await serve();
    const variables = (await api('GET', `/api/v1/fleets/${fleet.id}/variables`)).items;
    expect(variables).toEqual([expect.objectContaining({ name: 'API_TOKEN', secret: true, value: null })]);
    await stop(server);
  }, 90_000);
});
