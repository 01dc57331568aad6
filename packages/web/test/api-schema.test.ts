import fs from 'node:fs';
import { expect, it } from 'vitest';
import { generateApiTypes, schemaFile } from '../scripts/api-schema.ts';

it("types the web UI's API client from the server's OpenAPI document as it is now", async () => {
  const committed = fs.readFileSync(schemaFile, 'utf8');
  // A route or field changed on the server without the UI's types following it: the UI could call what no
  // longer exists. Run `npm run api-types -w @fleetgate/web` and look at what the UI must change.
  expect(
    committed === (await generateApiTypes()),
    `${schemaFile} is stale: npm run api-types -w @fleetgate/web`,
  ).toBe(true);
});
