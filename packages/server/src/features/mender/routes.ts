import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type DevicePrincipal, requireUser } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam, userKeyName } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import { registerAuthRequestRoute } from '../auth-sets/auth-request-route.ts';
import { deleteAuthSet, preauthorizeOne, setAuthSetStatus } from '../auth-sets/service.ts';
import { authenticateDevice, deviceCredentialOf } from '../device-auth/index.ts';
import { decommissionDevice, getDeviceLimit } from '../devices/index.ts';
import { defaultFleetFor } from '../fleets/index.ts';
import {
  defaultOrgOf,
  getMenderDevice,
  listMenderDevices,
  menderAuthSetOf,
  updateInventory,
} from './service.ts';

/**
 * Mender-compatible HTTP API (DESIGN section 5), so the Debian `mender-client` works against fleetgate:
 * the device API under /api/devices (auth requests, inventory, deployments) and the device authentication
 * management API under /api/management/v2/devauth. These live outside /api/v1, so each scope authenticates
 * its callers itself: devices with their token, people with a session token or API key. They are left out of
 * the OpenAPI document (which describes fleetgate's own /api/v1); Mender's documentation describes them.
 */
export function registerMenderRoutes(app: TypedApp, deps: ServiceDeps, auth: AuthService): void {
  registerAuthRequestRoute(app, deps, '/api/devices/v1/authentication/auth_requests', { hide: true });
  registerDeviceApi(app, deps);
  registerUserLogin(app, auth);
  registerManagementApi(app, deps, auth);
}

/**
 * `POST /api/management/v1/useradm/auth/login` with `Authorization: Basic <email:password>`, as Mender's docs and
 * `mender-cli login` sign in: the answer is a session token as plain text (Mender answers its JWT so), for
 * `Authorization: Bearer` on the management API (and fleetgate's own). The same sign-in as `POST
 * /api/v1/auth/login`, with its rate limits.
 */
function registerUserLogin(app: TypedApp, auth: AuthService): void {
  app.post(
    '/api/management/v1/useradm/auth/login',
    {
      config: { public: true },
      schema: {
        hide: true,
        tags: ['mender'],
        summary: 'Sign in with Basic e-mail:password (Mender); the token as text',
      },
    },
    async (request, reply) => {
      const header = request.headers.authorization ?? '';
      const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
      const decoded = basic ? Buffer.from(basic[1]!, 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      if (colon < 1)
        throw new AppError('unauthorized', 'sign in with Authorization: Basic <base64 of email:password>');
      const session = await auth.login(
        { email: decoded.slice(0, colon).trim(), password: decoded.slice(colon + 1) },
        request.ip,
      );
      return reply.type('application/jwt').send(session.token);
    },
  );
}

const menderStatus = z.enum(['pending', 'accepted', 'rejected', 'preauthorized']);
const inventoryValue = z.union([
  z.string().max(4096),
  z.number(),
  z.boolean(),
  z.array(z.union([z.string().max(4096), z.number(), z.boolean()])).max(256),
]);
const inventoryBody = z
  .array(
    z.object({
      name: userKeyName(
        z
          .string()
          .min(1)
          .max(1024)
          .regex(/^[^\p{Cc}]+$/u, 'no control characters'),
      ),
      value: inventoryValue,
      description: z.string().max(4096).optional(),
    }),
  )
  .max(1000);

function registerDeviceApi(app: TypedApp, deps: ServiceDeps): void {
  app.register(async (plain) => {
    const scope = plain.withTypeProvider<ZodTypeProvider>();
    scope.addHook('onRequest', async (request) => {
      const credential = deviceCredentialOf(request.headers.authorization);
      if (!credential)
        throw new AppError('unauthorized', 'send the device token: Authorization: Bearer <device token>');
      request.principal = await authenticateDevice(deps, credential, request.ip);
    });
    const tags = ['mender'];
    for (const method of ['PUT', 'PATCH'] as const) {
      scope.route({
        method,
        url: '/api/devices/v1/inventory/device/attributes',
        schema: {
          hide: true,
          tags,
          summary: `Inventory attributes of the calling device (${method === 'PUT' ? 'replace all' : 'merge'})`,
          body: inventoryBody,
          response: { 200: z.null() },
        },
        handler: async (request, reply) => {
          const actor = actorOf(request) as ReturnType<typeof actorOf> & { principal: DevicePrincipal };
          await updateInventory(deps, actor, request.body, method === 'PUT');
          return reply.status(200).send(null);
        },
      });
    }
    const noUpdate = async (
      _request: unknown,
      reply: { status(code: number): { send(body: null): unknown } },
    ) => reply.status(204).send(null);
    scope.post(
      '/api/devices/v2/deployments/device/deployments/next',
      { schema: { hide: true, tags, summary: 'Next deployment for the device: none (204)' } },
      noUpdate,
    );
    scope.get(
      '/api/devices/v1/deployments/device/deployments/next',
      { schema: { hide: true, tags, summary: 'Next deployment for the device: none (204)' } },
      noUpdate,
    );
  });
}

const deviceId = z
  .string()
  .regex(/^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{64})$/, 'a device uuid (32 hex) or identity hash (64 hex)');
const authSetId = z.string().regex(/^[1-9]\d{0,9}$/, 'an auth set id');

function registerManagementApi(app: TypedApp, deps: ServiceDeps, auth: AuthService): void {
  app.register(async (plain) => {
    const scope = plain.withTypeProvider<ZodTypeProvider>();
    scope.addHook('onRequest', async (request) => {
      request.principal = await auth.authenticate(request.headers.authorization, request.ip);
      requireUser(request.principal);
    });
    const tags = ['mender'];
    const base = '/api/management/v2/devauth';

    scope.post(
      `${base}/devices`,
      {
        schema: {
          hide: true,
          tags,
          summary:
            "Preauthorize a device (Mender). Goes to ?fleet=<id>, else the oldest fleet of the caller's first organization (a fleet named default, made when it has none). 409 with the existing device when the identity is known, unless force",
          querystring: z.object({ fleet: idParam.optional() }),
          body: z.object({
            identity_data: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
            pubkey: z.string().min(1).max(8192),
            force: z.boolean().optional(),
          }),
        },
      },
      async (request, reply) => {
        const actor = actorOf(request);
        const fleetId =
          request.query.fleet ??
          (await defaultFleetFor(deps, actor, defaultOrgOf(actor, 'device.authorize')));
        const { authSet } = await preauthorizeOne(deps, actor, {
          fleetId,
          force: request.body.force,
          row: { identity: request.body.identity_data, publicKey: request.body.pubkey },
        });
        return reply.status(201).header('location', `${base}/devices/${authSet.deviceUuid}`).send(null);
      },
    );
    scope.get(
      `${base}/devices`,
      {
        schema: {
          hide: true,
          tags,
          summary: 'Devices with their auth sets (Mender); X-Total-Count has the number of matches',
          querystring: z.object({
            status: menderStatus.optional(),
            page: z.coerce.number().int().min(1).max(1_000_000).default(1),
            per_page: z.coerce.number().int().min(1).max(500).default(20),
          }),
        },
      },
      async (request, reply) => {
        const { items, total } = await listMenderDevices(deps, actorOf(request), {
          status: request.query.status,
          page: request.query.page,
          perPage: request.query.per_page,
        });
        return reply.header('x-total-count', String(total)).send(items);
      },
    );
    scope.get(
      `${base}/devices/:id`,
      {
        schema: {
          hide: true,
          tags,
          summary: 'One device with its auth sets (Mender)',
          params: z.object({ id: deviceId }),
        },
      },
      async (request) => getMenderDevice(deps, actorOf(request), request.params.id),
    );
    scope.put(
      `${base}/devices/:id/auth/:aid/status`,
      {
        schema: {
          hide: true,
          tags,
          summary:
            "Accept, reject or return to pending one auth set (Mender). A new device goes to the set's proposed fleet, else ?fleet=<id>, else the organization's oldest fleet (a fleet named default, made when it has none); 422 over the device limit",
          params: z.object({ id: deviceId, aid: authSetId }),
          querystring: z.object({ fleet: idParam.optional() }),
          body: z.object({
            status: z.enum(['accepted', 'rejected', 'pending']),
            fleet: z.number().int().positive().optional(),
          }),
        },
      },
      async (request, reply) => {
        const actor = actorOf(request);
        const id = await menderAuthSetOf(deps, actor, request.params.id, request.params.aid);
        await setAuthSetStatus(
          deps,
          actor,
          id,
          request.body.status,
          request.body.fleet ?? request.query.fleet,
        );
        return reply.status(204).send(null);
      },
    );
    scope.delete(
      `${base}/devices/:id/auth/:aid`,
      {
        schema: {
          hide: true,
          tags,
          summary: 'Delete one auth set (Mender); a device only preauthorized goes with it',
          params: z.object({ id: deviceId, aid: authSetId }),
        },
      },
      async (request, reply) => {
        const actor = actorOf(request);
        const id = await menderAuthSetOf(deps, actor, request.params.id, request.params.aid);
        await deleteAuthSet(deps, actor, id);
        return reply.status(204).send(null);
      },
    );
    scope.delete(
      `${base}/devices/:id`,
      {
        schema: {
          hide: true,
          tags,
          summary:
            'Decommission a device (Mender): every credential refused at once. An identity waiting without a device has its requests deleted',
          params: z.object({ id: deviceId }),
        },
      },
      async (request, reply) => {
        const actor = actorOf(request);
        const device = await getMenderDevice(deps, actor, request.params.id);
        if (device.id.length === 32) await decommissionDevice(deps, actor, device.id);
        else for (const set of device.auth_sets) await deleteAuthSet(deps, actor, Number(set.id));
        return reply.status(204).send(null);
      },
    );
    scope.get(
      `${base}/limits/max_devices`,
      {
        schema: {
          hide: true,
          tags,
          summary:
            "The device limit of the caller's first organization (Mender: 0 means unlimited; `unlimited` says so explicitly)",
          querystring: z.object({ org: idParam.optional() }),
        },
      },
      async (request) => {
        const actor = actorOf(request);
        const orgId = request.query.org ?? defaultOrgOf(actor, 'org.read');
        const { limit, accepted } = await getDeviceLimit(deps, actor, orgId);
        return { limit: limit ?? 0, unlimited: limit === null, accepted, orgId };
      },
    );
  });
}
