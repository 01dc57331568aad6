import { z } from 'zod';
import { serviceKinds } from '../../infra/access/index.ts';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam, nameString } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { createApiKey, listApiKeys, revokeApiKey } from './service.ts';

const apiKeySchema = z.object({
  id: z.number(),
  name: z.string(),
  prefix: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  service: z
    .enum(serviceKinds)
    .nullable()
    .describe("null: the person's own key; else the service this service credential is for"),
});

export function registerApiKeyRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['api-keys'];
  app.get(
    '/api/v1/api-keys',
    {
      schema: {
        tags,
        summary: 'My API keys (the keys themselves are never shown again)',
        response: { 200: z.object({ items: z.array(apiKeySchema) }) },
      },
    },
    async (request) => ({ items: await listApiKeys(deps, actorOf(request)) }),
  );
  app.post(
    '/api/v1/api-keys',
    {
      schema: {
        tags,
        summary: 'Create an API key for scripts; the answer holds the key once',
        body: z.strictObject({
          name: nameString,
          expiresInDays: z.number().int().min(1).max(3650).optional(),
          service: z
            .enum(serviceKinds)
            .optional()
            .describe(
              'make a service credential (server administrators only) that may do only what the service needs: ' +
                "`openssh`, for the OpenSSH bastion (look up SSH keys, open sessions as the SSH key's owner)",
            ),
        }),
        response: { 201: apiKeySchema.extend({ key: z.string() }) },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await createApiKey(deps, actorOf(request), request.body)),
  );
  app.delete(
    '/api/v1/api-keys/:keyId',
    {
      schema: {
        tags,
        summary: 'Revoke one of my API keys',
        params: z.object({ keyId: idParam }),
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await revokeApiKey(deps, actorOf(request), request.params.keyId);
      return reply.status(204).send(null);
    },
  );
}
