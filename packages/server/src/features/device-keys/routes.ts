import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceRefParam, deviceStatuses } from '../devices/index.ts';
import {
  DEVICE_KEY_PATTERN,
  deviceSelf,
  listDeviceKeys,
  revokeDeviceKeys,
  rotateOwnDeviceKey,
} from './service.ts';

const deviceKeySchema = z.object({
  id: z.number(),
  origin: z.enum(['register', 'rotate', 'import', 'recovery', 'exchange']),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

/** A key a device chose: 16-512 printable ASCII characters, no spaces. */
export const deviceKeyString = z
  .string()
  .regex(DEVICE_KEY_PATTERN, '16-512 printable ASCII characters without spaces');

export function registerDeviceKeyRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['device-keys'];
  app.get(
    '/api/v1/device/self',
    {
      config: { forDevices: true },
      schema: {
        tags,
        summary: 'The calling device itself (device credential: uuid + key, or a device token)',
        response: {
          200: z.object({
            id: z.number(),
            uuid: z.string(),
            name: z.string(),
            orgId: z.number(),
            fleetId: z.number(),
            deviceType: z.string(),
            osVersion: z.string().nullable(),
            agentVersion: z.string().nullable(),
            status: z.enum(deviceStatuses),
            credential: z.enum(['device_key', 'device_token']),
          }),
        },
      },
    },
    async (request) => deviceSelf(deps, actorOf(request)),
  );
  app.post(
    '/api/v1/device/self/key',
    {
      config: { forDevices: true },
      schema: {
        tags,
        summary: "Replace the calling device's key: with the one sent, or a generated one answered once",
        body: z.strictObject({ key: deviceKeyString.optional() }).nullish(),
        response: { 201: z.object({ keyId: z.number(), key: z.string().optional() }) },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await rotateOwnDeviceKey(deps, actorOf(request), { key: request.body?.key })),
  );
  app.get(
    '/api/v1/devices/:device/keys',
    {
      schema: {
        tags,
        summary: "A device's keys (metadata only: the keys are never stored)",
        params: z.object({ device: deviceRefParam }),
        response: { 200: z.object({ items: z.array(deviceKeySchema) }) },
      },
    },
    async (request) => ({ items: await listDeviceKeys(deps, actorOf(request), request.params.device) }),
  );
  app.delete(
    '/api/v1/devices/:device/keys',
    {
      schema: {
        tags,
        summary: "Revoke all of a device's keys and tokens: refused from its next request on",
        params: z.object({ device: deviceRefParam }),
        response: { 200: z.object({ revoked: z.number() }) },
      },
    },
    async (request) => revokeDeviceKeys(deps, actorOf(request), request.params.device),
  );
  app.delete(
    '/api/v1/devices/:device/keys/:keyId',
    {
      schema: {
        tags,
        summary: "Revoke one of a device's keys (and its tokens issued so far)",
        params: z.object({ device: deviceRefParam, keyId: idParam }),
        response: { 200: z.object({ revoked: z.number() }) },
      },
    },
    async (request) => revokeDeviceKeys(deps, actorOf(request), request.params.device, request.params.keyId),
  );
}
