import path from 'node:path';
import { buildApp } from './app.ts';
import { ensureFirstOwner } from './features/setup/service.ts';
import { type Config, type ConfigInput, loadConfig } from './infra/config/index.ts';
import { openDatabase } from './infra/db/index.ts';
import { createLogger } from './infra/logging/index.ts';

export { buildApp } from './app.ts';
export { type Config, ConfigError, envNames, loadConfig } from './infra/config/index.ts';
export { dropPostgresSchema, openDatabase } from './infra/db/index.ts';
export { createLogger } from './infra/logging/index.ts';
export { ensureFirstOwner };

export interface RunningServer {
  url: string;
  config: Config;
  close(): Promise<void>;
}

export interface StartOptions {
  flags?: ConfigInput;
  env?: NodeJS.ProcessEnv;
  /** Where the banner goes; default standard output. */
  print?: (text: string) => void;
}

/**
 * `fleetgate serve`: reads the configuration, opens (and migrates) the database, creates the first owner on
 * the very first start, listens, and prints where to open fleetgate and how to sign in.
 */
export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const config = loadConfig(options.env ?? process.env, options.flags ?? {});
  const print = options.print ?? ((text: string) => process.stdout.write(text));
  const log = createLogger(config.logLevel);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    schema: config.dbSchema,
    sqliteFile: path.join(config.dataDir, 'fleetgate.db'),
  });
  const app = await buildApp({ config, database, log });
  const firstRun = await ensureFirstOwner({ db: database.db, config, log });
  await app.listen({ host: config.listen, port: config.httpPort });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.httpPort;
  const host = config.listen.includes(':') ? `[${config.listen}]` : config.listen;
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`;

  const lines = [
    '',
    `fleetgate is running at ${url}`,
    `  API          ${url}/api/v1`,
    `  API docs     ${url}/api/docs`,
    `  health       ${url}/healthz   metrics ${url}/metrics`,
    `  database     ${database.dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'} ${database.location}`,
  ];
  if (firstRun) {
    lines.push(
      '',
      `First start: created the organization "${firstRun.orgName}" and its owner ${firstRun.email}.`,
      ...(firstRun.generatedPassword
        ? [
            `  password     ${firstRun.generatedPassword}`,
            '  (shown only this once; change it with: npx fleetgate login --server ' +
              url +
              ' and then PATCH /api/v1/me,',
            '   or set FLEETGATE_ADMIN_PASSWORD before the first start)',
          ]
        : ['  password     the one in FLEETGATE_ADMIN_PASSWORD']),
    );
  }
  lines.push('', `Sign in from the CLI: npx fleetgate login --server ${url}`, '');
  print(lines.join('\n'));

  let closing: Promise<void> | undefined;
  return {
    url,
    config,
    close: () => {
      closing ??= (async () => {
        await app.close();
        await database.close();
      })();
      return closing;
    },
  };
}
