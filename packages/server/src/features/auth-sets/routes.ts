import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idField, idParam, nameString, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { getDeviceLimit, setDeviceLimit } from '../devices/index.ts';
import { orgIdOf, orgRefParam } from '../orgs/index.ts';
import { registerAuthRequestRoute } from './auth-request-route.ts';
import {
  deleteAuthSet,
  getAuthSet,
  listAuthSets,
  preauthorizeMany,
  setAuthSetStatus,
  setAuthSetStatuses,
} from './service.ts';

export const authSetStatuses = ['pending', 'accepted', 'rejected', 'preauthorized'] as const;

export const authSetSchema = z.object({
  id: z.number(),
  orgId: z.number(),
  deviceId: z.number().nullable(),
  deviceUuid: z.string().nullable(),
  fleetId: z.number().nullable(),
  identity: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
  identityHash: z.string(),
  publicKey: z.string(),
  keyType: z.enum(['rsa', 'ecdsa-p256', 'ecdsa-p384', 'ed25519']),
  status: z.enum(authSetStatuses),
  sourceIp: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  lastRequestAt: z.string().nullable(),
  requestCount: z.number(),
});

const bulkIds = z.array(idField).min(1).max(1000);
const bulkResult = z.object({
  items: z.array(
    z.object({
      id: z.number(),
      outcome: z.enum(['accepted', 'rejected', 'error']),
      deviceId: z.number().optional(),
      reason: z.string().optional(),
    }),
  ),
});
const identityInput = z
  .record(z.string(), z.union([z.string(), z.array(z.string())]))
  .describe('identity attributes, e.g. {"mac":"02:12:61:13:6c:42"}');
const limitSchema = z.object({
  orgId: z.number(),
  limit: z.number().nullable(),
  accepted: z
    .number()
    .describe(
      'devices the limit counts: not decommissioned, and accepted (an auth set accepted, or enrolled without auth sets)',
    ),
});

/** Native REST for people: the pending queue, accept / reject in bulk, preauthorization, the device limit. */
export function registerAuthSetRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['auth-sets'];
  registerAuthRequestRoute(app, deps, '/api/v1/device-auth/auth_requests');

  app.get(
    '/api/v1/auth-sets',
    {
      schema: {
        tags,
        summary: 'Device auth sets (identity + public key) I can see, newest first',
        querystring: z.object({
          ...pageQuery,
          status: z.enum(authSetStatuses).optional(),
          orgId: idParam.optional(),
          deviceId: idParam.optional(),
        }),
        response: { 200: pageOf(authSetSchema) },
      },
    },
    async (request) => listAuthSets(deps, actorOf(request), request.query),
  );
  app.get(
    '/api/v1/auth-sets/:id',
    {
      schema: {
        tags,
        summary: 'One auth set',
        params: z.object({ id: idParam }),
        response: { 200: authSetSchema },
      },
    },
    async (request) => getAuthSet(deps, actorOf(request), request.params.id),
  );
  app.post(
    '/api/v1/auth-sets/accept',
    {
      schema: {
        tags,
        summary:
          "Accept auth sets: each device gets a token on its next request. A set without a device creates one in its proposed fleet, else `fleetId`, else the organization's oldest fleet",
        body: z.strictObject({ ids: bulkIds, fleetId: idField.optional() }),
        response: { 200: bulkResult },
      },
    },
    async (request) => ({
      items: await setAuthSetStatuses(
        deps,
        actorOf(request),
        request.body.ids,
        'accepted',
        request.body.fleetId,
      ),
    }),
  );
  app.post(
    '/api/v1/auth-sets/reject',
    {
      schema: {
        tags,
        summary: 'Reject auth sets: their devices get 401 from now on',
        body: z.strictObject({ ids: bulkIds }),
        response: { 200: bulkResult },
      },
    },
    async (request) => ({
      items: await setAuthSetStatuses(deps, actorOf(request), request.body.ids, 'rejected'),
    }),
  );
  app.put(
    '/api/v1/auth-sets/:id/status',
    {
      schema: {
        tags,
        summary: 'Set one auth set to accepted, rejected or pending',
        params: z.object({ id: idParam }),
        body: z.strictObject({
          status: z.enum(['accepted', 'rejected', 'pending']),
          fleetId: idField.optional(),
        }),
        response: { 200: authSetSchema },
      },
    },
    async (request) =>
      setAuthSetStatus(deps, actorOf(request), request.params.id, request.body.status, request.body.fleetId),
  );
  app.delete(
    '/api/v1/auth-sets/:id',
    {
      schema: {
        tags,
        summary: 'Delete an auth set (a device only preauthorized goes with it)',
        params: z.object({ id: idParam }),
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await deleteAuthSet(deps, actorOf(request), request.params.id);
      return reply.status(204).send(null);
    },
  );
  app.post(
    '/api/v1/auth-sets/preauthorize',
    {
      schema: {
        tags,
        summary:
          'Preauthorize devices (identity + PEM public key): each is accepted on its first signed auth request. Per-row result: created, conflict (identity known; pass force) or invalid',
        body: z.strictObject({
          fleetId: idField,
          force: z.boolean().optional(),
          devices: z
            .array(
              z.strictObject({
                identity: identityInput,
                publicKey: z.string().min(1).max(8192),
                name: nameString.optional(),
              }),
            )
            .min(1)
            .max(1000),
        }),
        response: {
          200: z.object({
            created: z.number(),
            conflicts: z.number(),
            invalid: z.number(),
            items: z.array(
              z.object({
                index: z.number(),
                outcome: z.enum(['created', 'conflict', 'invalid']),
                identity: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional(),
                authSetId: z.number().optional(),
                device: z
                  .object({ id: z.number(), uuid: z.string(), name: z.string(), fleetId: z.number() })
                  .optional(),
                reason: z.string().optional(),
              }),
            ),
          }),
        },
      },
    },
    async (request) => {
      const items = await preauthorizeMany(deps, actorOf(request), {
        fleetId: request.body.fleetId,
        force: request.body.force,
        rows: request.body.devices,
      });
      const count = (o: string) => items.filter((i) => i.outcome === o).length;
      return { created: count('created'), conflicts: count('conflict'), invalid: count('invalid'), items };
    },
  );
  app.get(
    '/api/v1/orgs/:orgId/device-limit',
    {
      schema: {
        tags,
        summary: "The organization's device limit (null: unlimited) and how many devices it counts now",
        params: z.object({ orgId: orgRefParam }),
        response: { 200: limitSchema },
      },
    },
    async (request) =>
      getDeviceLimit(deps, actorOf(request), await orgIdOf(deps.db, actorOf(request), request.params.orgId)),
  );
  app.put(
    '/api/v1/orgs/:orgId/device-limit',
    {
      schema: {
        tags,
        summary: 'Set the device limit (null: unlimited; 0: none may be accepted) — owners and admins',
        params: z.object({ orgId: orgRefParam }),
        body: z.strictObject({ limit: z.number().int().min(0).max(10_000_000).nullable() }),
        response: { 200: limitSchema },
      },
    },
    async (request) =>
      setDeviceLimit(
        deps,
        actorOf(request),
        await orgIdOf(deps.db, actorOf(request), request.params.orgId),
        request.body.limit,
      ),
  );
}
