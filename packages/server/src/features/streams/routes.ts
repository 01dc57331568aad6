import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceRefParam } from '../devices/routes.ts';
import {
  getDeviceAllowedPorts,
  getFleetAllowedPorts,
  MAX_ALLOWED_PORTS,
  setDeviceAllowedPorts,
  setFleetAllowedPorts,
} from './service.ts';

const port = z.number().int().min(1).max(65535);
const allowedPortsSchema = z.object({
  ports: z.array(z.number()),
  source: z.enum(['device', 'fleet', 'default']).describe('where the list comes from (default: [22])'),
});

export function registerStreamRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['remote access'];
  app.get(
    '/api/v1/fleets/:fleetId/allowed-ports',
    {
      schema: {
        tags,
        summary: "Ports people may reach on the fleet's devices (port forwarding, CONNECT)",
        params: z.object({ fleetId: idParam }),
        response: { 200: allowedPortsSchema },
      },
    },
    async (request) => getFleetAllowedPorts(deps, actorOf(request), request.params.fleetId),
  );
  app.put(
    '/api/v1/fleets/:fleetId/allowed-ports',
    {
      schema: {
        tags,
        summary: "Set the fleet's port allow-list (admins); null goes back to the default ([22])",
        params: z.object({ fleetId: idParam }),
        body: z.strictObject({ ports: z.array(port).max(MAX_ALLOWED_PORTS).nullable() }),
        response: { 200: allowedPortsSchema },
      },
    },
    async (request) =>
      setFleetAllowedPorts(deps, actorOf(request), request.params.fleetId, request.body.ports),
  );
  app.get(
    '/api/v1/devices/:device/allowed-ports',
    {
      schema: {
        tags,
        summary: 'Ports people may reach on the device: its own list, else its fleet’s, else [22]',
        params: z.object({ device: deviceRefParam }),
        response: { 200: allowedPortsSchema },
      },
    },
    async (request) => getDeviceAllowedPorts(deps, actorOf(request), request.params.device),
  );
  app.put(
    '/api/v1/devices/:device/allowed-ports',
    {
      schema: {
        tags,
        summary: "Set the device's own port allow-list (admins); null goes back to its fleet's",
        params: z.object({ device: deviceRefParam }),
        body: z.strictObject({ ports: z.array(port).max(MAX_ALLOWED_PORTS).nullable() }),
        response: { 200: allowedPortsSchema },
      },
    },
    async (request) =>
      setDeviceAllowedPorts(deps, actorOf(request), request.params.device, request.body.ports),
  );
}
