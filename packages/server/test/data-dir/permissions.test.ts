import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/index.ts';
import { dropPostgresSchema } from '../../src/infra/db/index.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, dialectUnderTest } from '../harness.ts';
import { requestJson } from '../listening.ts';

const modeOf = (file: string) => fs.statSync(file).mode & 0o777;
const databaseFiles = ['fleetgate.db', 'fleetgate.db-wal', 'fleetgate.db-shm'];

describe('the data directory', () => {
  let parent: string;
  let dataDir: string;
  const schema = `fg_test_${randomBytes(6).toString('hex')}`;
  let logLines: Array<Record<string, unknown>>;
  const running: RunningServer[] = [];

  /** `fleetgate serve` on `dataDir`, as the CLI starts it; its log lines are kept in `logLines`. */
  const serve = async () => {
    logLines = [];
    const server = await startServer({
      env: process.env,
      print: () => {},
      logDestination: { write: (line: string) => logLines.push(JSON.parse(line)) },
      flags: {
        dataDir,
        adminEmail: ADMIN_EMAIL,
        adminPassword: ADMIN_PASSWORD,
        logLevel: 'info',
        httpPort: 0,
        proxyPort: 0,
        sshPort: 0,
        listen: '127.0.0.1',
        dbSchema: process.env.DATABASE_URL ? schema : 'public',
      },
    });
    running.push(server);
    return server;
  };

  beforeEach(() => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-perms-'));
    dataDir = path.join(parent, 'data');
  });
  afterEach(async () => {
    for (const server of running.splice(0)) await server.close();
    if (process.env.DATABASE_URL) await dropPostgresSchema(process.env.DATABASE_URL, schema);
    fs.rmSync(parent, { recursive: true, force: true });
  });

  it('is made 0700 with its database files 0600 on a first start', async () => {
    const server = await serve();
    expect(modeOf(dataDir)).toBe(0o700);
    if (dialectUnderTest === 'sqlite') {
      // All three exist while the server runs in WAL mode.
      for (const name of databaseFiles) expect(modeOf(path.join(dataDir, name))).toBe(0o600);
    }
    for (const entry of fs.readdirSync(dataDir, { withFileTypes: true })) {
      const mode = modeOf(path.join(dataDir, entry.name));
      expect(mode & 0o077, `${entry.name} is ${mode.toString(8)}`).toBe(0);
    }
    expect(logLines.filter((line) => line.changed)).toEqual([]);
    await server.close();
  });

  it('of an existing install with 0755 and 0644 modes is fixed at start, with one log line saying what changed', async () => {
    await (await serve()).close();
    // What installs made before this rule look like under a 022 umask.
    fs.chmodSync(dataDir, 0o755);
    for (const name of databaseFiles) {
      const file = path.join(dataDir, name);
      if (!fs.existsSync(file)) fs.writeFileSync(file, '');
      fs.chmodSync(file, 0o644);
    }

    const server = await serve();

    expect(modeOf(dataDir)).toBe(0o700);
    for (const name of databaseFiles) expect(modeOf(path.join(dataDir, name))).toBe(0o600);
    const fixed = logLines.filter((line) => line.changed);
    expect(fixed).toHaveLength(1);
    expect(fixed[0]?.msg).toMatch(/made it 0700 and its files 0600/);
    expect(fixed[0]?.changed).toEqual(
      expect.arrayContaining(['. 0755 → 0700', ...databaseFiles.map((name) => `${name} 0644 → 0600`)]),
    );
    // Everything is still there.
    const login = await requestJson(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    expect(login.status).toBe(200);
  });
});
