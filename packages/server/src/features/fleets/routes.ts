import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idField, idParam, nameString, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { registerTagRoutes } from '../tags/routes.ts';
import { fleetIdOf, fleetRefParam } from './resolve.ts';
import {
  createFleet,
  deleteFleet,
  getFleet,
  listFleets,
  listFleetTags,
  removeFleetTag,
  setFleetTag,
  updateFleet,
} from './service.ts';

const fleetSchema = z.object({
  id: z.number(),
  orgId: z.number(),
  name: z.string(),
  description: z.string(),
  defaultDeviceType: z.string().nullable(),
  deviceCount: z.number(),
  tags: z.record(z.string(), z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const fleetParams = z.object({ fleetId: fleetRefParam });
const description = z.string().max(4096);
const deviceTypeSlug = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a device type slug');

export function registerFleetRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['fleets'];
  app.get(
    '/api/v1/fleets',
    {
      schema: {
        tags,
        summary: 'Fleets I can see',
        querystring: z.object({
          ...pageQuery,
          orgId: idParam.optional(),
          q: z.string().max(128).optional().describe('text in the name'),
          sort: z.enum(['name', '-name', 'createdAt', '-createdAt']).optional(),
        }),
        response: { 200: pageOf(fleetSchema) },
      },
    },
    async (request) => listFleets(deps, actorOf(request), request.query),
  );
  app.post(
    '/api/v1/fleets',
    {
      schema: {
        tags,
        summary: 'Create a fleet in an organization',
        body: z.strictObject({
          orgId: idField,
          name: nameString,
          description: description.optional(),
          defaultDeviceType: deviceTypeSlug.optional(),
        }),
        response: { 201: fleetSchema },
      },
    },
    async (request, reply) => reply.status(201).send(await createFleet(deps, actorOf(request), request.body)),
  );
  app.get(
    '/api/v1/fleets/:fleetId',
    { schema: { tags, summary: 'One fleet', params: fleetParams, response: { 200: fleetSchema } } },
    async (request) =>
      getFleet(deps, actorOf(request), await fleetIdOf(deps.db, actorOf(request), request.params.fleetId)),
  );
  app.patch(
    '/api/v1/fleets/:fleetId',
    {
      schema: {
        tags,
        summary: 'Change a fleet',
        params: fleetParams,
        body: z.strictObject({
          name: nameString.optional(),
          description: description.optional(),
          defaultDeviceType: deviceTypeSlug.nullable().optional(),
        }),
        response: { 200: fleetSchema },
      },
    },
    async (request) =>
      updateFleet(
        deps,
        actorOf(request),
        await fleetIdOf(deps.db, actorOf(request), request.params.fleetId),
        request.body,
      ),
  );
  app.delete(
    '/api/v1/fleets/:fleetId',
    { schema: { tags, summary: 'Delete an empty fleet', params: fleetParams, response: { 204: z.null() } } },
    async (request, reply) => {
      await deleteFleet(
        deps,
        actorOf(request),
        await fleetIdOf(deps.db, actorOf(request), request.params.fleetId),
      );
      return reply.status(204).send(null);
    },
  );

  registerTagRoutes(app, {
    ownerPath: '/api/v1/fleets/:fleetId',
    ownerParam: 'fleetId',
    ownerSchema: fleetRefParam,
    ownerName: 'fleet',
    tags,
    list: async (actor, ref) => listFleetTags(deps, actor, await fleetIdOf(deps.db, actor, ref)),
    set: async (actor, ref, key, value) =>
      setFleetTag(deps, actor, await fleetIdOf(deps.db, actor, ref), key, value),
    remove: async (actor, ref, key) => removeFleetTag(deps, actor, await fleetIdOf(deps.db, actor, ref), key),
  });
}
