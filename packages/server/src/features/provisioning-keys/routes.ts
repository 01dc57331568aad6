import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError, rateLimited } from '../../infra/errors/index.ts';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam, nameString } from '../../infra/http/schemas.ts';
import { FailureLimiter } from '../../infra/rate-limit/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceKeyString } from '../device-keys/routes.ts';
import { fleetIdOf, fleetRefParam } from '../fleets/index.ts';
import { registerBalenaProvisioningRoutes } from './balena-routes.ts';
import {
  createProvisioningKey,
  listProvisioningKeys,
  provisioningKeyRefused,
  registerDevice,
  revokeProvisioningKey,
} from './service.ts';

/** Refused registrations allowed per source address in `REGISTER_FAILURE_WINDOW_MS` before it must wait. */
export const REGISTER_FAILURES_PER_SOURCE = 20;
/** The window of `REGISTER_FAILURES_PER_SOURCE`, in milliseconds (10 minutes). */
export const REGISTER_FAILURE_WINDOW_MS = 10 * 60 * 1000;

const provisioningKeySchema = z.object({
  id: z.number(),
  orgId: z.number(),
  fleetId: z.number(),
  name: z.string(),
  prefix: z.string(),
  maxUses: z.number().nullable(),
  uses: z.number(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

const shortText = z
  .string()
  .trim()
  .min(1)
  .max(128)
  .regex(/^[^\p{Cc}\p{Cs}]+$/u, 'must not contain control characters');

/** A provisioning key's value as devices send it: `fgp_…`, a balena provisioning key, a Mender tenant token. */
const provisioningKeyString = z
  .string()
  .regex(/^[\x21-\x7e]{16,1024}$/, '16-1024 printable ASCII characters without spaces');

/** balena's `POST /device/register` body, snake_case as balena sends it. */
const registrationBody = z.object({
  uuid: z.string().regex(/^[0-9a-fA-F]{32}$/, '32 hexadecimal characters'),
  device_type: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a device type slug'),
  api_key: deviceKeyString,
  name: nameString.optional(),
  os_version: shortText.optional(),
  agent_version: shortText.optional(),
});

export function registerProvisioningKeyRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['provisioning-keys'];
  const fleetParams = z.object({ fleetId: fleetRefParam });

  app.get(
    '/api/v1/fleets/:fleetId/provisioning-keys',
    {
      schema: {
        tags,
        summary: "A fleet's provisioning keys (the keys themselves are never shown again)",
        params: fleetParams,
        response: { 200: z.object({ items: z.array(provisioningKeySchema) }) },
      },
    },
    async (request) => ({
      items: await listProvisioningKeys(
        deps,
        actorOf(request),
        await fleetIdOf(deps.db, actorOf(request), request.params.fleetId),
      ),
    }),
  );
  app.post(
    '/api/v1/fleets/:fleetId/provisioning-keys',
    {
      schema: {
        tags,
        summary:
          'Create a provisioning key with which devices register into the fleet; shown once. With `key`: restore one',
        params: fleetParams,
        body: z.strictObject({
          name: nameString,
          expiresInDays: z.number().int().min(1).max(3650).optional(),
          maxUses: z.number().int().min(1).max(1_000_000_000).optional(),
          key: provisioningKeyString
            .optional()
            .describe(
              'Restore a key that devices already hold (after a database loss) instead of generating one; a value some key has already: 409',
            ),
        }),
        response: { 201: provisioningKeySchema.extend({ key: z.string() }) },
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(
          await createProvisioningKey(
            deps,
            actorOf(request),
            await fleetIdOf(deps.db, actorOf(request), request.params.fleetId),
            request.body,
          ),
        ),
  );
  app.delete(
    '/api/v1/provisioning-keys/:keyId',
    {
      schema: {
        tags,
        summary: 'Revoke a provisioning key (devices it registered keep working)',
        params: z.object({ keyId: idParam }),
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await revokeProvisioningKey(deps, actorOf(request), request.params.keyId);
      return reply.status(204).send(null);
    },
  );

  const guard = provisioningKeyGuard();
  app.post(
    '/api/v1/devices/register',
    {
      // Not a user route: the provisioning key in `Authorization: Bearer` is checked here.
      config: { public: true },
      schema: {
        tags,
        summary: 'A device registers itself with a provisioning key (balena POST /device/register)',
        security: [{ bearer: [] }],
        body: registrationBody,
        response: { 201: z.object({ id: z.number(), uuid: z.string() }) },
      },
      onRequest: guard.onRequest,
    },
    async (request, reply) => {
      const body = request.body;
      const device = await guard.run(request, (key) =>
        registerDevice(
          deps,
          key,
          {
            uuid: body.uuid,
            deviceType: body.device_type,
            apiKey: body.api_key,
            name: body.name,
            osVersion: body.os_version,
            agentVersion: body.agent_version,
          },
          request.ip,
        ),
      );
      return reply.status(201).send(device);
    },
  );
  registerBalenaProvisioningRoutes(app, deps, guard);
}

/**
 * The provisioning key in `Authorization: Bearer`, for every route that takes one: a source whose keys were
 * refused `REGISTER_FAILURES_PER_SOURCE` times waits out the window, on all of them together.
 */
export interface ProvisioningKeyGuard {
  /** The route's `onRequest`: a source waiting out its failures is told so before anything else is read. */
  onRequest(request: FastifyRequest): Promise<void>;
  /** Runs `use` with the request's provisioning key; a refused key (missing, unknown, unusable) counts a failure. */
  run<T>(request: FastifyRequest, use: (key: string) => Promise<T>): Promise<T>;
}

function provisioningKeyGuard(): ProvisioningKeyGuard {
  const failures = new FailureLimiter(REGISTER_FAILURES_PER_SOURCE, REGISTER_FAILURE_WINDOW_MS);
  return {
    async onRequest(request) {
      const wait = failures.retryAfter(request.ip);
      if (wait > 0) throw rateLimited('too many refused provisioning keys from this address', wait);
    },
    async run(request, use) {
      const key = /^Bearer\s+(\S{1,512})\s*$/i.exec(request.headers.authorization ?? '')?.[1];
      try {
        if (!key) throw provisioningKeyRefused();
        return await use(key);
      } catch (err) {
        if (err instanceof AppError && err.code === 'unauthorized') failures.fail(request.ip);
        throw err;
      }
    },
  };
}
