/**
 * `fleetgate doctor` as an operator runs it, with real processes: after a first `fleetgate serve` it finds no
 * problem and says the server runs (then, once stopped, that its ports are free); it names `chmod 700` for a data
 * directory others can read, the setting that moves a port another program holds, `fleetgate init --renew` for a
 * certificate close to its end or past it, `upgrade fleetgate` for a schema from a newer version, pending
 * migrations, stale scheduled backups, a running server's failed one and a wrong setting; `--json` answers the
 * same checks for scripts. SQLite, or PostgreSQL with DATABASE_URL (the clock is then compared with the database
 * server's).
 */
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { initTls, issueServerCertificate, subjectAltNamesFor, tlsFilesOf } from '@fleetgate/server';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBin, eventually, freePort, Processes, type Running } from './processes.ts';

const dayMs = 24 * 3600 * 1000;

let processes: Processes;
let dataDir: string;
let ports: { http: number; ssh: number; proxy: number };
/** `--database-url`/`--db-schema` of this file's schema on PostgreSQL, nothing on SQLite. */
let databaseFlags: string[];
let server: Running | undefined;

/** The settings `serve` runs with, as doctor takes them. */
function settings(): string[] {
  return [
    '--data-dir',
    dataDir,
    '--port',
    String(ports.http),
    '--ssh-port',
    String(ports.ssh),
    '--proxy-port',
    String(ports.proxy),
    ...databaseFlags,
  ];
}

/** Runs `fleetgate doctor` with the server's settings and `args`; its exit code and what it printed. */
async function doctor(args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const started = Date.now();
  const running = processes.start(cliBin, ['doctor', ...settings(), ...args], env);
  // 'close', not 'exit': every byte of output has arrived by then.
  const [code] = (await once(running.child, 'close')) as [number | null];
  return { code, output: running.output(), ms: Date.now() - started };
}

/** The schema's migration bookkeeping, on whichever database this file runs. */
async function migrations<T>(
  work: (run: (statement: string, values?: unknown[]) => Promise<unknown>) => Promise<T>,
): Promise<T> {
  if (!processes.databaseUrl) {
    const database = new SqliteDatabase(path.join(dataDir, 'fleetgate.db'));
    try {
      return await work(async (statement, values = []) =>
        database.prepare(statement.replaceAll(/\$\d/g, '?')).run(...values),
      );
    } finally {
      database.close();
    }
  }
  const client = new pg.Client({ connectionString: processes.databaseUrl });
  await client.connect();
  try {
    await client.query(`set search_path to "${processes.schema}"`);
    return await work((statement, values) => client.query(statement, values));
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  processes = new Processes();
  dataDir = path.join(processes.dir, 'server');
  databaseFlags = processes.databaseUrl
    ? ['--database-url', processes.databaseUrl, '--db-schema', processes.schema]
    : [];
  ports = { http: await freePort(), ssh: await freePort(), proxy: await freePort() };
  server = processes.start(cliBin, [
    'serve',
    ...settings(),
    '--admin-email',
    'owner@doctor.test',
    '--admin-password',
    'doctor-password-1',
    '--log-level',
    'warn',
  ]);
  await eventually(
    'the server to be ready (/readyz)',
    async () => (await fetch(`http://127.0.0.1:${ports.http}/readyz`)).ok,
  );
});

afterAll(async () => {
  await processes?.cleanUp();
});

describe(`fleetgate doctor (${process.env.DATABASE_URL ? 'PostgreSQL' : 'SQLite'})`, () => {
  it('finds no problem on a fresh install while its server runs, and says the server is running and ready', async () => {
    const { code, output, ms } = await doctor();
    expect(output).toMatch(/^ok\s+configuration\s+loaded/m);
    expect(output).toMatch(/^ok\s+data directory\s+.* is private \(0700\)/m);
    expect(output).toMatch(/^ok\s+database\s+.*\(current\)/m);
    expect(output).toMatch(
      new RegExp(
        `^ok\\s+server\\s+a fleetgate server is running at http://127.0.0.1:${ports.http} and is ready`,
        'm',
      ),
    );
    expect(output).toMatch(/^ok\s+disk\s+/m);
    // No scheduled backups: a warning, not a problem.
    expect(output).toMatch(/^warning\s+backups\s+no scheduled backups: set FLEETGATE_BACKUP_INTERVAL/m);
    expect(output).not.toMatch(/^problem/m);
    expect(output).toMatch(/no problem found/);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(10_000);
  });

  it('answers every check as JSON with --json, the clock compared with PostgreSQL when there is one', async () => {
    const { code, output } = await doctor(['--json']);
    expect(code).toBe(0);
    const report = JSON.parse(output);
    expect(report.ok).toBe(true);
    for (const entry of report.checks) {
      expect(Object.keys(entry).sort()).toEqual(['check', 'level', 'message']);
      expect(['ok', 'warning', 'problem', 'skipped']).toContain(entry.level);
    }
    const names = report.checks.map((entry: { check: string }) => entry.check);
    expect(names).toEqual(
      expect.arrayContaining([
        'configuration',
        'data directory',
        'database',
        'clock',
        'server',
        'disk',
        'backups',
      ]),
    );
    const clock = report.checks.find((entry: { check: string }) => entry.check === 'clock');
    if (processes.databaseUrl) {
      expect(clock).toMatchObject({
        level: 'ok',
        message: expect.stringMatching(/of the database server's/),
      });
    } else {
      expect(clock).toMatchObject({ level: 'skipped', message: expect.stringMatching(/SQLite/) });
    }
    // The database URL's password never shows.
    const password = processes.databaseUrl && new URL(processes.databaseUrl).password;
    if (password) expect(output).not.toContain(password);
  });

  it('says each port is free to bind once the server has stopped', async () => {
    server!.child.kill('SIGTERM');
    await once(server!.child, 'exit');
    server = undefined;
    const { code, output } = await doctor();
    expect(output).toMatch(new RegExp(`^ok\\s+HTTP port\\s+127.0.0.1:${ports.http} is free`, 'm'));
    expect(output).toMatch(new RegExp(`^ok\\s+SSH port\\s+127.0.0.1:${ports.ssh} is free`, 'm'));
    expect(output).toMatch(new RegExp(`^ok\\s+proxy port\\s+127.0.0.1:${ports.proxy} is free`, 'm'));
    expect(code).toBe(0);
  });

  it('checks the OpenVPN backend when it is on: its program and a plan that fits, naming what to change', async () => {
    const off = await doctor();
    expect(off.output).toMatch(/^skipped\s+OpenVPN\s+the OpenVPN backend is off/m);
    const fits = await doctor([], { FLEETGATE_VPN: 'on', FLEETGATE_VPN_INSTANCES: '2' });
    expect(fits.output).toMatch(
      /^ok\s+OpenVPN\s+OpenVPN 2\.6\.\d+, 2 instance\(s\) planned in 10\.240\.0\.0\/12/m,
    );
    const tooMany = await doctor([], { FLEETGATE_VPN: 'on', FLEETGATE_VPN_INSTANCES: '300' });
    expect(tooMany.output).toMatch(/^problem\s+OpenVPN\s+300 instances do not fit in 10\.240\.0\.0\/12/m);
    expect(tooMany.code).toBe(1);
    const missing = await doctor([], { FLEETGATE_VPN: 'on', FLEETGATE_VPN_OPENVPN: '/nonexistent/openvpn' });
    expect(missing.output).toMatch(
      /^problem\s+OpenVPN\s+\/nonexistent\/openvpn cannot run \(ENOENT\): install OpenVPN 2\.6/m,
    );
  });

  it('names the setting that moves a port another program holds, and fails', async () => {
    const holder = net.createServer();
    holder.listen(ports.ssh, '127.0.0.1');
    await once(holder, 'listening');
    try {
      const { code, output } = await doctor();
      expect(output).toMatch(
        new RegExp(
          `^problem\\s+SSH port\\s+127.0.0.1:${ports.ssh} is in use by another process: stop it, or choose another with --ssh-port <port> or FLEETGATE_SSH_PORT`,
          'm',
        ),
      );
      expect(output).toMatch(/^ok\s+HTTP port/m);
      expect(code).toBe(1);
    } finally {
      holder.close();
    }
  });

  it('says when something other than fleetgate answers on the HTTP port', async () => {
    const other = http.createServer((_request, response) => response.writeHead(404).end('not here'));
    other.listen(ports.http, '127.0.0.1');
    await once(other, 'listening');
    try {
      const { code, output } = await doctor();
      expect(output).toMatch(
        new RegExp(
          `^problem\\s+HTTP port\\s+http://127.0.0.1:${ports.http} answers, but not as fleetgate: .*--port <port> or FLEETGATE_HTTP_PORT`,
          'm',
        ),
      );
      expect(output).toMatch(/^ok\s+SSH port/m);
      expect(code).toBe(1);
    } finally {
      other.close();
    }
  });

  it.runIf(process.getuid?.() === 0 && !process.env.DATABASE_URL)(
    'does not open, as another account, a SQLite database whose server is stopped (it would leave files the server cannot write)',
    async () => {
      const file = path.join(dataDir, 'fleetgate.db');
      // As after a clean stop: no -wal or -shm (the earlier runs of doctor, as the owner, left empty ones).
      for (const suffix of ['-wal', '-shm']) fs.rmSync(`${file}${suffix}`, { force: true });
      const owner = fs.statSync(file);
      fs.chownSync(file, 4242, 4242);
      try {
        const { code, output } = await doctor();
        expect(output).toMatch(/^skipped\s+database\s+.*belongs to uid 4242.*run it as that account/m);
        expect(fs.existsSync(`${file}-wal`)).toBe(false);
        expect(code).toBe(0);
      } finally {
        fs.chownSync(file, owner.uid, owner.gid);
      }
    },
  );

  it('says to chmod 700 a data directory other accounts can read', async () => {
    fs.chmodSync(dataDir, 0o755);
    try {
      const { code, output } = await doctor();
      expect(output).toMatch(
        new RegExp(`^warning\\s+data directory\\s+.*mode 0755.*chmod 700 ${dataDir}`, 'm'),
      );
      // A warning: serve lowers the mode itself at its next start.
      expect(code).toBe(0);
    } finally {
      fs.chmodSync(dataDir, 0o700);
    }
  });

  it('warns about pending migrations and fails on a schema from a newer fleetgate', async () => {
    // The newest migration this fleetgate knows, as doctor names it.
    const current = JSON.parse((await doctor(['--json'])).output).checks.find(
      (entry: { check: string }) => entry.check === 'database',
    );
    const newest = (current.message as string).match(/schema (\d{4}_\w+) \(current\)/)![1]!;
    await migrations((run) => run('delete from kysely_migration where name = $1', [newest]));
    try {
      const { code, output } = await doctor();
      expect(output).toMatch(/^warning\s+database\s+.*1 migration\(s\) pending.*they run at the next start/m);
      expect(code).toBe(0);
    } finally {
      await migrations((run) =>
        run('insert into kysely_migration (name, timestamp) values ($1, $2)', [
          newest,
          new Date().toISOString(),
        ]),
      );
    }
    await migrations((run) =>
      run('insert into kysely_migration (name, timestamp) values ($1, $2)', [
        '9999_from_the_future',
        new Date().toISOString(),
      ]),
    );
    try {
      const { code, output } = await doctor();
      expect(output).toMatch(
        /^problem\s+database\s+.*a newer fleetgate \(9999_from_the_future\).*upgrade fleetgate/m,
      );
      expect(code).toBe(1);
    } finally {
      await migrations((run) =>
        run('delete from kysely_migration where name = $1', ['9999_from_the_future']),
      );
    }
  });

  it('warns about a certificate close to its end and fails on an expired one, naming fleetgate init --renew', async () => {
    const files = tlsFilesOf(dataDir);
    await initTls({ dataDir, hosts: ['fleet.example.com'] });
    const ca = { cert: fs.readFileSync(files.caCert, 'utf8'), key: fs.readFileSync(files.caKey, 'utf8') };
    const install = async (options: { days: number; now?: Date }) => {
      const pair = await issueServerCertificate(ca, subjectAltNamesFor(['fleet.example.com']), options);
      fs.writeFileSync(files.serverKey, pair.key, { mode: 0o600 });
      fs.writeFileSync(files.serverCert, pair.cert);
    };
    try {
      await install({ days: 10 });
      const soon = await doctor();
      expect(soon.output).toMatch(
        /^warning\s+certificate\s+the server certificate .*server\.crt expires in \d+ day\(s\).*fleetgate init --renew --data-dir/m,
      );
      expect(soon.output).toMatch(/^ok\s+CA certificate\s+.*ca\.crt valid until/m);
      expect(soon.code).toBe(0);

      await install({ days: 10, now: new Date(Date.now() - 40 * dayMs) });
      const expired = await doctor();
      expect(expired.output).toMatch(
        /^problem\s+certificate\s+the server certificate .*server\.crt expired.*fleetgate init --renew --data-dir/m,
      );
      expect(expired.code).toBe(1);
    } finally {
      fs.rmSync(files.dir, { recursive: true, force: true });
    }
  });

  it('fails when the newest scheduled backup is older than two intervals', async () => {
    const backups = path.join(dataDir, 'backups');
    fs.mkdirSync(backups, { recursive: true, mode: 0o700 });
    const file = path.join(backups, 'fleetgate-2026-01-01T00-00-00-000Z.tar.gz');
    fs.writeFileSync(file, 'not read by doctor', { mode: 0o600 });
    const threeHoursAgo = new Date(Date.now() - 3 * 3600 * 1000);
    fs.utimesSync(file, threeHoursAgo, threeHoursAgo);
    try {
      const stale = await doctor([], { FLEETGATE_BACKUP_INTERVAL: '1h' });
      expect(stale.output).toMatch(
        /^problem\s+backups\s+the newest backup, .* is 3\.0 h old \(more than two intervals/m,
      );
      expect(stale.code).toBe(1);
      const fresh = await doctor([], { FLEETGATE_BACKUP_INTERVAL: '2h' });
      expect(fresh.output).toMatch(
        /^ok\s+backups\s+newest .*fleetgate-2026-01-01T00-00-00-000Z\.tar\.gz, 3\.0 h old/m,
      );
      expect(fresh.code).toBe(0);
    } finally {
      fs.rmSync(backups, { recursive: true, force: true });
    }
  });

  it("fails on a running server's failed scheduled backup, with the reason it gives", async () => {
    // A backup folder under a file: every scheduled backup fails, and the server says so in /readyz.
    const blocker = path.join(processes.dir, 'not-a-folder');
    fs.writeFileSync(blocker, '');
    const env = { FLEETGATE_BACKUP_INTERVAL: '1h', FLEETGATE_BACKUP_DIR: path.join(blocker, 'backups') };
    const running = processes.start(
      cliBin,
      ['serve', ...settings(), '--admin-email', 'owner@doctor.test', '--log-level', 'fatal'],
      env,
    );
    try {
      await eventually('the first scheduled backup to fail', async () => {
        const ready = await (await fetch(`http://127.0.0.1:${ports.http}/readyz`)).json();
        return ready.backups?.lastError ? ready : undefined;
      });
      const { code, output } = await doctor([], env);
      expect(output).toMatch(/^ok\s+server\s+a fleetgate server is running/m);
      expect(output).toMatch(
        /^problem\s+backups\s+the server's last scheduled backup failed, at \d{4}-.*: \S/m,
      );
      expect(code).toBe(1);
    } finally {
      running.child.kill('SIGTERM');
      await once(running.child, 'exit');
    }
  });

  it('lists every wrong setting and fails', async () => {
    const { code, output } = await doctor([], { FLEETGATE_LOG_LEVEL: 'loud', FLEETGATE_BACKUP_KEEP: 'none' });
    expect(output).toMatch(/^problem\s+configuration\s+.*FLEETGATE_LOG_LEVEL: .*FLEETGATE_BACKUP_KEEP: /m);
    expect(code).toBe(1);
  });
});
