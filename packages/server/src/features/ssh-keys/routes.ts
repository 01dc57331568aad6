import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam, nameString } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { addSshKey, listSshKeys, removeSshKey } from './service.ts';

const sshKeySchema = z.object({
  id: z.number(),
  name: z.string(),
  algorithm: z.string(),
  fingerprint: z.string(),
  publicKey: z.string(),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
});

export function registerSshKeyRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['ssh-keys'];
  app.get(
    '/api/v1/ssh-keys',
    {
      schema: {
        tags,
        summary: 'My SSH public keys',
        response: { 200: z.object({ items: z.array(sshKeySchema) }) },
      },
    },
    async (request) => ({
      items: await listSshKeys(deps, actorOf(request)),
    }),
  );
  app.post(
    '/api/v1/ssh-keys',
    {
      schema: {
        tags,
        summary: 'Register an SSH public key (one line of id_*.pub) for the SSH gateway',
        body: z.strictObject({ publicKey: z.string().min(1).max(16384), name: nameString.optional() }),
        response: { 201: sshKeySchema },
      },
    },
    async (request, reply) => reply.status(201).send(await addSshKey(deps, actorOf(request), request.body)),
  );
  app.delete(
    '/api/v1/ssh-keys/:keyId',
    {
      schema: {
        tags,
        summary: 'Remove one of my SSH keys',
        params: z.object({ keyId: idParam }),
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await removeSshKey(deps, actorOf(request), request.params.keyId);
      return reply.status(204).send(null);
    },
  );
}
