import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceRefParam } from '../devices/routes.ts';
import { linkKinds } from '../devices/status.ts';
import { listDeviceConnections } from './service.ts';

const connectionSchema = z.object({
  id: z.number(),
  link: z.enum(linkKinds).describe("the agent's tunnel, OpenVPN or mender-connect"),
  connectedAt: z.string(),
  disconnectedAt: z.string().nullable(),
  durationMs: z.number().nullable().describe('null while the connection is open'),
  remoteAddress: z.string().nullable(),
  agentVersion: z.string().nullable(),
  closeCode: z.number().nullable().describe('the tunnel close code (4000-4008), see the protocol'),
  closeReason: z.string().nullable(),
});

export function registerPresenceRoutes(app: TypedApp, deps: ServiceDeps): void {
  app.get(
    '/api/v1/devices/:device/connections',
    {
      schema: {
        tags: ['devices'],
        summary: "A device's connections (tunnel and OpenVPN), newest first (written about once a second)",
        params: z.object({ device: deviceRefParam }),
        querystring: z.object(pageQuery),
        response: { 200: pageOf(connectionSchema) },
      },
    },
    async (request) => listDeviceConnections(deps, actorOf(request), request.params.device, request.query),
  );
}
