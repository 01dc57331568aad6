/**
 * Several fleetgate instances on one PostgreSQL schema, shared by the bench/cluster benches: the database, and
 * the flags of each instance (one data directory, the internal link on, one cluster secret).
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { freePort } from './processes.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, type Flags } from './server-process.ts';

/** `--database-url`, else DATABASE_URL, else the local test database. */
export function clusterDatabaseUrl(option: string | undefined): string {
  return option ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export interface ClusterSetting {
  databaseUrl: string;
  /** A schema of the bench's own, for `dropPostgresSchema` at the end. */
  schema: string;
  /** The data directory every instance shares (its keys/ folder above all). */
  dataDir: string;
  clusterSecret: string;
}

export function clusterSetting(databaseUrl: string, dir: string): ClusterSetting {
  return {
    databaseUrl,
    schema: `fg_bench_cluster_${randomBytes(4).toString('hex')}`,
    dataDir: path.join(dir, 'data'),
    clusterSecret: randomBytes(32).toString('hex'),
  };
}

/**
 * One instance's flags on 127.0.0.1: free HTTP and internal ports; with `proxy`, the CONNECT proxy on a free port
 * chosen here, so that the bench knows it (else 0, as the SSH gateway: a port the server picks).
 */
export async function instanceFlags(setting: ClusterSetting, options: { proxy: boolean }): Promise<Flags> {
  return {
    dataDir: setting.dataDir,
    listen: '127.0.0.1',
    httpPort: await freePort(),
    proxyPort: options.proxy ? await freePort() : 0,
    sshPort: 0,
    logLevel: 'warn',
    adminEmail: ADMIN_EMAIL,
    adminPassword: ADMIN_PASSWORD,
    databaseUrl: setting.databaseUrl,
    dbSchema: setting.schema,
    internalPort: await freePort(),
    clusterSecret: setting.clusterSecret,
  };
}
