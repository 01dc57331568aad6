import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceRefParam } from '../devices/index.ts';
import { fleetIdOf, fleetRefParam } from '../fleets/index.ts';
import {
  getDeviceAllowedPorts,
  getFleetAllowedPorts,
  getPortAccess,
  MAX_ALLOWED_PORTS,
  setDeviceAllowedPorts,
  setFleetAllowedPorts,
} from './allowed-ports.ts';

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
        params: z.object({ fleetId: fleetRefParam }),
        response: { 200: allowedPortsSchema },
      },
    },
    async (request) =>
      getFleetAllowedPorts(
        deps,
        actorOf(request),
        await fleetIdOf(deps.db, actorOf(request), request.params.fleetId),
      ),
  );
  app.put(
    '/api/v1/fleets/:fleetId/allowed-ports',
    {
      schema: {
        tags,
        summary: "Set the fleet's port allow-list (admins); null goes back to the default ([22])",
        params: z.object({ fleetId: fleetRefParam }),
        body: z.strictObject({ ports: z.array(port).max(MAX_ALLOWED_PORTS).nullable() }),
        response: { 200: allowedPortsSchema },
      },
    },
    async (request) =>
      setFleetAllowedPorts(
        deps,
        actorOf(request),
        await fleetIdOf(deps.db, actorOf(request), request.params.fleetId),
        request.body.ports,
      ),
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
  app.get(
    '/api/v1/devices/:device/ports/:port',
    {
      schema: {
        tags,
        summary: 'Whether I may open streams to this port of the device (`fleetgate tunnel` asks first)',
        description:
          'Answers for people who may connect to the device (operators and above; viewers get 403). ' +
          '`allowed` says whether the port is on the allow-list now. With `Connection: Upgrade` and ' +
          '`Upgrade: fleetgate-stream`, the same URL opens a stream to the port: `101 Switching Protocols` ' +
          "once the device accepted, then the port's bytes both ways; refusals answer as here, 409 when the " +
          'device is decommissioned, and 503 when it is offline or refuses the port.',
        params: z.object({ device: deviceRefParam, port: z.coerce.number().int().min(1).max(65535) }),
        response: {
          200: allowedPortsSchema.extend({
            port: z.number(),
            allowed: z.boolean().describe('whether the port is on the allow-list (`ports`)'),
          }),
        },
      },
    },
    async (request) => getPortAccess(deps, actorOf(request), request.params.device, request.params.port),
  );
}
