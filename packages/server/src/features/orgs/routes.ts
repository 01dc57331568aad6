import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { nameString, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { orgIdOf, orgRefParam } from './resolve.ts';
import { createOrg, deleteOrg, getOrg, listOrgs, updateOrg } from './service.ts';

const orgSchema = z.object({
  id: z.number(),
  slug: z.string(),
  name: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const orgParams = z.object({ orgId: orgRefParam });
const slugString = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/, 'lower-case letters, digits and dashes, 1-48 characters');

export function registerOrgRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['organizations'];
  app.get(
    '/api/v1/orgs',
    {
      schema: {
        tags,
        summary: 'My organizations',
        querystring: z.object(pageQuery),
        response: { 200: pageOf(orgSchema) },
      },
    },
    async (request) => listOrgs(deps, actorOf(request), request.query),
  );
  app.post(
    '/api/v1/orgs',
    {
      schema: {
        tags,
        summary: 'Create an organization; you become its owner',
        body: z.strictObject({ name: nameString, slug: slugString.optional() }),
        response: { 201: orgSchema },
      },
    },
    async (request, reply) => reply.status(201).send(await createOrg(deps, actorOf(request), request.body)),
  );
  app.get(
    '/api/v1/orgs/:orgId',
    { schema: { tags, summary: 'One organization', params: orgParams, response: { 200: orgSchema } } },
    async (request) =>
      getOrg(deps, actorOf(request), await orgIdOf(deps.db, actorOf(request), request.params.orgId)),
  );
  app.patch(
    '/api/v1/orgs/:orgId',
    {
      schema: {
        tags,
        summary: 'Rename an organization',
        params: orgParams,
        body: z.strictObject({ name: nameString.optional() }),
        response: { 200: orgSchema },
      },
    },
    async (request) =>
      updateOrg(
        deps,
        actorOf(request),
        await orgIdOf(deps.db, actorOf(request), request.params.orgId),
        request.body,
      ),
  );
  app.delete(
    '/api/v1/orgs/:orgId',
    {
      schema: {
        tags,
        summary: 'Delete an empty organization (owners)',
        params: orgParams,
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await deleteOrg(deps, actorOf(request), await orgIdOf(deps.db, actorOf(request), request.params.orgId));
      return reply.status(204).send(null);
    },
  );
}
