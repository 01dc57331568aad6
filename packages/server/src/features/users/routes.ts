import { z } from 'zod';
import { actions, roles } from '../../infra/access/index.ts';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam, nameString, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { createUser, deleteUser, getUser, listUsers, updateUser } from './service.ts';

export const passwordString = z.string().min(8, 'must be at least 8 characters').max(1024);

export const userSchema = z.object({
  id: z.number(),
  email: z.string(),
  name: z.string(),
  serverAdmin: z.boolean(),
  createdAt: z.string(),
});

export const meSchema = userSchema.extend({
  memberships: z.array(
    z.object({
      orgId: z.number(),
      orgName: z.string(),
      orgSlug: z.string(),
      role: z.enum(roles),
      fleetIds: z.array(z.number()).nullable(),
      actions: z
        .array(z.enum(actions))
        .describe('what this membership allows (fleet actions only in its fleets when narrowed)'),
    }),
  ),
});

const userParams = z.object({ userId: idParam });

export function registerUserRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['users'];
  app.get(
    '/api/v1/users',
    {
      schema: {
        tags,
        summary: 'Users I can see: the people of my organizations (all users for server admins)',
        querystring: z.object({ ...pageQuery, q: z.string().max(254).optional() }),
        response: { 200: pageOf(userSchema) },
      },
    },
    async (request) => listUsers(deps, actorOf(request), request.query),
  );

  app.post(
    '/api/v1/users',
    {
      schema: {
        tags,
        summary: 'Create a user (server admins). Without a password, a random one is answered once.',
        body: z.strictObject({
          email: z.email().max(254),
          name: nameString.optional(),
          password: passwordString.optional(),
        }),
        response: { 201: userSchema.extend({ password: z.string().optional() }) },
      },
    },
    async (request, reply) => reply.status(201).send(await createUser(deps, actorOf(request), request.body)),
  );

  app.get(
    '/api/v1/users/:userId',
    { schema: { tags, summary: 'One user', params: userParams, response: { 200: userSchema } } },
    async (request) => getUser(deps, actorOf(request), request.params.userId),
  );

  app.patch(
    '/api/v1/users/:userId',
    {
      schema: {
        tags,
        summary: 'Change a user (yourself, or anyone for server admins)',
        params: userParams,
        body: z.strictObject({
          name: nameString.optional(),
          password: passwordString.optional(),
          currentPassword: z.string().max(1024).optional(),
        }),
        response: { 200: userSchema },
      },
    },
    async (request) => updateUser(deps, actorOf(request), request.params.userId, request.body),
  );

  app.delete(
    '/api/v1/users/:userId',
    {
      schema: {
        tags,
        summary: 'Delete a user (server admins)',
        params: userParams,
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await deleteUser(deps, actorOf(request), request.params.userId);
      return reply.status(204).send(null);
    },
  );
}
