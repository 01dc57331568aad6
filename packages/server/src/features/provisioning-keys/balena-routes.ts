import { z } from 'zod';
import { randomToken } from '../../infra/crypto/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import type { TypedApp } from '../../infra/http/index.ts';
import { idParam } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { authenticateDeviceKey } from '../device-auth/index.ts';
import { DEVICE_KEY_PATTERN } from '../device-keys/service.ts';
import type { ProvisioningKeyGuard } from './routes.ts';
import { deviceIdForProvisioningKey, exchangeDeviceKey, registerDevice } from './service.ts';

/**
 * Registration and key exchange at balena's own paths, with balena's request and answer shapes, so a stock
 * balenaOS device (its supervisor) provisions itself against fleetgate unchanged. The same services as
 * `POST /api/v1/devices/register` behind them, and the same per-source limit on refused provisioning keys.
 * Left out of the OpenAPI document (which describes fleetgate's own /api/v1), as the Mender-compatible API is:
 * balena's documentation describes them. Wire facts from balena-register-device lib/register.ts (the body the
 * supervisor sends, and it wants 201), balena-supervisor src/lib/api-helper.ts (the lookup and the key exchange,
 * which wants 200) and open-balena-api src/features/device-provisioning/register.ts and
 * src/features/api-keys/routes.ts (the answers).
 */

const tags = ['balena'];
const deviceKey = z.string().regex(DEVICE_KEY_PATTERN, '16-512 printable ASCII characters without spaces');
const shortText = z
  .string()
  .trim()
  .min(1)
  .max(128)
  .regex(/^[^\p{Cc}\p{Cs}]+$/u, 'must not contain control characters');

/**
 * What balena-register-device sends. `application` (and `user`) name the fleet in balena; here the provisioning
 * key alone decides the fleet, as an imported openBalena `config.json` names an application id fleetgate never
 * had. Unknown fields are ignored, as balena does.
 */
const balenaRegistration = z.object({
  user: z.union([z.number(), z.string().max(64)]).nullish(),
  application: z.union([z.number(), z.string().max(64)]).nullish(),
  uuid: z.string().regex(/^[0-9a-fA-F]{32}$/, '32 hexadecimal characters'),
  device_type: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a device type slug'),
  api_key: deviceKey.nullish(),
  supervisor_version: shortText.nullish(),
  os_version: shortText.nullish(),
  os_variant: shortText.nullish(),
  mac_address: z.string().max(1024).nullish(),
});

export function registerBalenaProvisioningRoutes(
  app: TypedApp,
  deps: ServiceDeps,
  guard: ProvisioningKeyGuard,
): void {
  app.post(
    '/device/register',
    {
      config: { public: true },
      schema: {
        hide: true,
        tags,
        summary: 'A balenaOS device registers itself with a provisioning key (balena POST /device/register)',
        body: balenaRegistration,
        response: { 201: z.object({ id: z.number(), uuid: z.string(), api_key: z.string() }) },
      },
      onRequest: guard.onRequest,
    },
    async (request, reply) => {
      const body = request.body;
      // balena makes a key when the device sends none, and answers it: the device has no other way to learn it.
      const apiKey = body.api_key ?? randomToken();
      const device = await guard.run(request, (key) =>
        registerDevice(
          deps,
          key,
          {
            uuid: body.uuid,
            deviceType: body.device_type,
            apiKey,
            osVersion: body.os_version ?? undefined,
            // The supervisor is a balenaOS device's agent.
            agentVersion: body.supervisor_version ?? undefined,
          },
          request.ip,
        ),
      );
      return reply.status(201).send({ id: device.id, uuid: device.uuid, api_key: apiKey });
    },
  );

  app.post(
    '/api-key/device/:deviceId/device-key',
    {
      config: { public: true },
      schema: {
        hide: true,
        tags,
        summary:
          "Key exchange: a fleet's provisioning key gives a device of the fleet that has no key its own",
        params: z.object({ deviceId: idParam }),
        // The supervisor sends `apiKey` (balena's name); `api_key` as /device/register spells it is taken too.
        body: z
          .object({
            apiKey: deviceKey.nullish(),
            api_key: deviceKey.nullish(),
            name: z.string().max(256).nullish(),
            description: z.string().max(1024).nullish(),
            expiryDate: z.string().max(64).nullish(),
          })
          .nullish(),
        // balena answers the key as a JSON string; the supervisor only checks for 200.
        response: { 200: z.string() },
      },
      onRequest: guard.onRequest,
    },
    async (request, reply) => {
      const body = request.body ?? {};
      if (body.apiKey && body.api_key && body.apiKey !== body.api_key)
        throw new AppError('bad_request', 'send the device key once, as apiKey');
      const apiKey = body.apiKey ?? body.api_key ?? randomToken();
      await guard.run(request, (key) =>
        exchangeDeviceKey(deps, key, request.params.deviceId, apiKey, request.ip),
      );
      return reply.status(200).type('application/json; charset=utf-8').send(JSON.stringify(apiKey));
    },
  );

  app.get(
    '/v7/device',
    {
      config: { public: true },
      schema: {
        hide: true,
        tags,
        summary: "balena's device lookup by uuid, as the supervisor asks it before a key exchange",
        querystring: z.object({
          $select: z.literal('id').optional(),
          $filter: z.string().max(256),
        }),
        response: { 200: z.object({ d: z.array(z.object({ id: z.number() })) }) },
      },
      onRequest: guard.onRequest,
    },
    async (request) => {
      // pinejs-client writes `{ $filter: { uuid } }` as `uuid eq '<uuid>'`: the one query this route answers.
      const uuid = /^\(?\s*uuid\s+eq\s+'([0-9a-fA-F]{32})'\s*\)?$/
        .exec(request.query.$filter)?.[1]
        ?.toLowerCase();
      if (!uuid)
        throw new AppError('bad_request', "only $filter=uuid eq '<32 hex uuid>' is answered here", {
          details: { hint: "GET /v7/device?$select=id&$filter=uuid eq '<uuid>'" },
        });
      const token = /^Bearer\s+(\S{1,512})\s*$/i.exec(request.headers.authorization ?? '')?.[1];
      if (!token) throw new AppError('unauthorized', 'send the device key or a provisioning key as Bearer');
      // The device's own key first (the supervisor's first try); else a provisioning key of its fleet.
      const device = await authenticateDeviceKey(deps, token, request.ip).catch((err: unknown) => {
        if (err instanceof AppError && err.code === 'unauthorized') return undefined;
        throw err;
      });
      if (device) return { d: device.uuid === uuid ? [{ id: device.deviceId }] : [] };
      const id = await guard.run(request, (key) => deviceIdForProvisioningKey(deps, key, uuid));
      return { d: id === undefined ? [] : [{ id }] };
    },
  );
}
