/**
 * The web UI's API types come from the server's own OpenAPI document (the one `/api/v1/openapi.json` serves,
 * made from the routes' zod schemas), so the UI cannot call a route or read a field the server does not publish.
 *
 * `npm run api-types -w @fleetgate/web` rewrites src/api/schema.d.ts; test/api-schema.test.ts fails when the
 * committed file no longer matches the server.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildApp, createLogger, loadConfig, openDatabase } from '@fleetgate/server';
import openapiTS, { astToString } from 'openapi-typescript';

export const schemaFile = path.resolve(import.meta.dirname, '../src/api/schema.d.ts');

/** The TypeScript declarations of the server's OpenAPI document as it is now. */
export async function generateApiTypes(): Promise<string> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-openapi-'));
  const config = loadConfig({}, { dataDir, logLevel: 'silent', httpPort: 0, sshPort: 0, proxyPort: 0 });
  const database = await openDatabase({ sqliteFile: path.join(dataDir, 'fleetgate.db') });
  try {
    const app = await buildApp({ config, database, log: createLogger('silent') });
    await app.ready();
    const document = app.swagger();
    await app.close();
    const ast = await openapiTS(document as Parameters<typeof openapiTS>[0]);
    return `// Generated from the server's OpenAPI document by scripts/api-schema.ts: do not edit.\n${astToString(ast)}`;
  } finally {
    await database.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  fs.writeFileSync(schemaFile, await generateApiTypes());
  process.stdout.write(`wrote ${schemaFile}\n`);
}
