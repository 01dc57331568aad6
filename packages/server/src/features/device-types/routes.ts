import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idField, idParam, nameString } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { createDeviceType, deleteDeviceType, listDeviceTypes } from './service.ts';

const deviceTypeSchema = z.object({
  id: z.number().nullable(),
  orgId: z.number().nullable(),
  slug: z.string(),
  name: z.string(),
  arch: z.string(),
  builtin: z.boolean(),
});

export function registerDeviceTypeRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['device-types'];
  app.get(
    '/api/v1/device-types',
    {
      schema: {
        tags,
        summary: 'Built-in device types and the custom ones of my organizations',
        querystring: z.object({ orgId: idParam.optional() }),
        response: { 200: z.object({ items: z.array(deviceTypeSchema) }) },
      },
    },
    async (request) => ({ items: await listDeviceTypes(deps, actorOf(request), request.query) }),
  );
  app.post(
    '/api/v1/device-types',
    {
      schema: {
        tags,
        summary: 'Add a custom device type to an organization',
        body: z.strictObject({
          orgId: idField,
          slug: z
            .string()
            .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'lower-case letters, digits, ".", "_" and "-"'),
          name: nameString,
          arch: z.string().regex(/^[a-z0-9_]{1,32}$/, 'an architecture such as aarch64, armv7hf or amd64'),
        }),
        response: { 201: deviceTypeSchema },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await createDeviceType(deps, actorOf(request), request.body)),
  );
  app.delete(
    '/api/v1/device-types/:typeId',
    {
      schema: {
        tags,
        summary: 'Remove an unused custom device type',
        params: z.object({ typeId: idParam }),
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await deleteDeviceType(deps, actorOf(request), request.params.typeId);
      return reply.status(204).send(null);
    },
  );
}
