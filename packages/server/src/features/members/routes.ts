import { z } from 'zod';
import { roles } from '../../infra/access/index.ts';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idField, idParam, nameString, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { orgIdOf, orgRefParam } from '../orgs/index.ts';
import { addMember, listMembers, removeMember, updateMember } from './service.ts';

const memberSchema = z.object({
  userId: z.number(),
  email: z.string(),
  name: z.string(),
  role: z.enum(roles),
  fleetIds: z.array(z.number()).nullable(),
  createdAt: z.string(),
});
const fleetIds = z
  .array(idField)
  .min(1, 'name at least one fleet, or send null for the whole organization')
  .max(1000)
  .nullable()
  .describe('narrow the membership to these fleets (not for owners); null = the whole organization');

export function registerMemberRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['members'];
  const orgParams = z.object({ orgId: orgRefParam });
  const memberParams = z.object({ orgId: orgRefParam, userId: idParam });
  app.get(
    '/api/v1/orgs/:orgId/members',
    {
      schema: {
        tags,
        summary: 'People of an organization and their roles',
        params: orgParams,
        querystring: z.object(pageQuery),
        response: { 200: pageOf(memberSchema) },
      },
    },
    async (request) =>
      listMembers(
        deps,
        actorOf(request),
        await orgIdOf(deps.db, actorOf(request), request.params.orgId),
        request.query,
      ),
  );
  app.post(
    '/api/v1/orgs/:orgId/members',
    {
      schema: {
        tags,
        summary:
          'Add a person with a role; an unknown e-mail creates the user and answers a one-time password',
        params: orgParams,
        body: z.strictObject({
          email: z.email().max(254),
          role: z.enum(roles),
          fleetIds: fleetIds.optional(),
          name: nameString.optional(),
        }),
        response: { 201: memberSchema.extend({ password: z.string().optional() }) },
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(
          await addMember(
            deps,
            actorOf(request),
            await orgIdOf(deps.db, actorOf(request), request.params.orgId),
            request.body,
          ),
        ),
  );
  app.patch(
    '/api/v1/orgs/:orgId/members/:userId',
    {
      schema: {
        tags,
        summary: "Change a person's role or fleet scope",
        params: memberParams,
        body: z.strictObject({ role: z.enum(roles).optional(), fleetIds: fleetIds.optional() }),
        response: { 200: memberSchema },
      },
    },
    async (request) =>
      updateMember(
        deps,
        actorOf(request),
        await orgIdOf(deps.db, actorOf(request), request.params.orgId),
        request.params.userId,
        request.body,
      ),
  );
  app.delete(
    '/api/v1/orgs/:orgId/members/:userId',
    {
      schema: {
        tags,
        summary: 'Remove a person from the organization (or leave it yourself)',
        params: memberParams,
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await removeMember(
        deps,
        actorOf(request),
        await orgIdOf(deps.db, actorOf(request), request.params.orgId),
        request.params.userId,
      );
      return reply.status(204).send(null);
    },
  );
}
