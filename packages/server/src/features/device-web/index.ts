import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { actorOf, errorBody, type TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceRefParam } from '../devices/index.ts';
import type { StreamRouter } from '../remote-access/index.ts';
import { DeviceOrigins } from './origins.ts';
import { DEVICE_WEB_COOKIE, DeviceWebProxy, ENTER_PATH } from './proxy.ts';
import { createWebGrant, GRANT_TTL_MS, WEB_SESSION_TTL_MS } from './service.ts';

export { DeviceOrigins } from './origins.ts';
export { DEVICE_WEB_COOKIE, ENTER_PATH } from './proxy.ts';

/**
 * Device web pages (DESIGN section 13, issue 16): the web page of an allowed port of a device, in a browser tab,
 * through fleetgate. Each (device, port, scheme) is served from an origin of its own,
 * `<port>-<uuid>.<device web suffix>` on the HTTP listener (`<port>s-…` for HTTPS on the device), so a device's
 * page can never read fleetgate's cookies, call fleetgate's API as the person, or read another device's page.
 *
 * `POST /api/v1/devices/:device/web-sessions {port, https?}` answers a URL holding a single-use grant (60 s);
 * the device origin enters it at `/.fleetgate/enter?grant=` (proxy.ts), sets its own cookie and relays
 * everything else to the device port through the stream router (surface `web`).
 */
export function registerDeviceWeb(
  app: TypedApp,
  deps: ServiceDeps,
  router: StreamRouter,
  stopping: () => boolean,
): void {
  const origins = new DeviceOrigins(deps.config.deviceWebSuffix);
  const proxy = new DeviceWebProxy(deps, router, origins, stopping);
  app.hosts.route(proxy);
  app.addHook('preClose', async () => proxy.close());

  app.post(
    '/api/v1/devices/:device/web-sessions',
    {
      schema: {
        tags: ['remote access'],
        summary: "Open the web page of one of the device's ports: a single-use link to it",
        description:
          'For people who may open streams to the port (operators and above; viewers get 403), with the port on ' +
          "the device's allow-list (403 otherwise). Answers `url`: the device page's own origin " +
          `(\`<port>-<uuid>.${deps.config.deviceWebSuffix}\`, \`<port>s-…\` with \`https\`) at \`${ENTER_PATH}\` with a ` +
          `single-use grant, valid ${GRANT_TTL_MS / 1000} s. Opening it sets a cookie for that origin alone ` +
          `(\`${DEVICE_WEB_COOKIE}\`, at most ${WEB_SESSION_TTL_MS / 3600_000} h and no longer than this ` +
          "sign-in) and redirects to `/`: from then on that origin is the device's web server, each connection a " +
          'session (surface `web`). `https: true` speaks TLS to the device (self-signed certificates accepted).',
        params: z.object({ device: deviceRefParam }),
        body: z.strictObject({
          port: z.number().int().min(1).max(65535).describe('the device port its web server listens on'),
          https: z.boolean().default(false).describe('the device serves HTTPS on the port'),
        }),
        response: {
          201: z.object({
            url: z.string().describe('open it in a new tab, within `expiresAt`; it works once'),
            origin: z.string().describe("the device page's origin"),
            expiresAt: z.number().describe('when the link stops working (epoch milliseconds)'),
            device: z.object({ id: z.number(), uuid: z.string(), name: z.string() }),
          }),
          403: errorBody,
          404: errorBody,
        },
      },
    },
    async (request, reply) => {
      const { port, https } = request.body;
      const grant = await createWebGrant(deps, actorOf(request), request.params.device, { port, tls: https });
      const origin = originFor(request, origins.hostOf({ uuid: grant.device.uuid, port, tls: https }));
      reply.status(201);
      return {
        url: `${origin}${ENTER_PATH}?grant=${grant.grant}`,
        origin,
        expiresAt: grant.expiresAt,
        device: grant.device,
      };
    },
  );
}

/**
 * The device origin as the person reaches fleetgate: fleetgate's scheme, and the port of the `Host` they sent
 * (so it holds behind a port mapping or a reverse proxy that keeps `Host`).
 */
function originFor(request: FastifyRequest, deviceHost: string): string {
  const host = request.headers.host ?? '';
  const port = /:(\d{1,5})$/.exec(host)?.[1];
  return `${request.protocol}://${deviceHost}${port ? `:${port}` : ''}`;
}
