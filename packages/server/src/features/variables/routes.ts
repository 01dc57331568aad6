import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { variableName } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceRefParam } from '../devices/index.ts';
import { fleetIdOf, fleetRefParam } from '../fleets/index.ts';
import {
  deleteDeviceVariable,
  deleteFleetVariable,
  listDeviceVariables,
  listFleetVariables,
  setDeviceVariable,
  setFleetVariable,
} from './service.ts';

const variableSchema = z.object({
  name: z.string(),
  value: z.string().nullable(),
  secret: z.boolean(),
  updatedAt: z.string(),
});
const effectiveSchema = variableSchema.extend({
  source: z.enum(['device', 'fleet']),
  overridesFleet: z.boolean(),
});
const variableBody = z.strictObject({
  value: z.string().max(65536),
  secret: z.boolean().optional().describe('write-only: the value is never returned by the API'),
});

export function registerVariableRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['variables'];
  const fleetParams = z.object({ fleetId: fleetRefParam });
  const fleetVarParams = z.object({ fleetId: fleetRefParam, name: variableName });
  app.get(
    '/api/v1/fleets/:fleetId/variables',
    {
      schema: {
        tags,
        summary: "A fleet's variables (secret values are null)",
        params: fleetParams,
        response: { 200: z.object({ items: z.array(variableSchema) }) },
      },
    },
    async (request) => ({
      items: await listFleetVariables(
        deps,
        actorOf(request),
        await fleetIdOf(deps.db, actorOf(request), request.params.fleetId),
      ),
    }),
  );
  app.put(
    '/api/v1/fleets/:fleetId/variables/:name',
    {
      schema: {
        tags,
        summary: 'Set a fleet-wide variable',
        params: fleetVarParams,
        body: variableBody,
        response: { 200: variableSchema },
      },
    },
    async (request) =>
      setFleetVariable(
        deps,
        actorOf(request),
        await fleetIdOf(deps.db, actorOf(request), request.params.fleetId),
        request.params.name,
        request.body,
      ),
  );
  app.delete(
    '/api/v1/fleets/:fleetId/variables/:name',
    {
      schema: {
        tags,
        summary: 'Remove a fleet-wide variable',
        params: fleetVarParams,
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await deleteFleetVariable(
        deps,
        actorOf(request),
        await fleetIdOf(deps.db, actorOf(request), request.params.fleetId),
        request.params.name,
      );
      return reply.status(204).send(null);
    },
  );

  const deviceParams = z.object({ device: deviceRefParam });
  const deviceVarParams = z.object({ device: deviceRefParam, name: variableName });
  app.get(
    '/api/v1/devices/:device/variables',
    {
      schema: {
        tags,
        summary: "A device's effective variables: its own, then its fleet's (secret values are null)",
        params: deviceParams,
        response: { 200: z.object({ items: z.array(effectiveSchema) }) },
      },
    },
    async (request) => ({ items: await listDeviceVariables(deps, actorOf(request), request.params.device) }),
  );
  app.put(
    '/api/v1/devices/:device/variables/:name',
    {
      schema: {
        tags,
        summary: "Set a device variable (overrides the fleet's)",
        params: deviceVarParams,
        body: variableBody,
        response: { 200: variableSchema },
      },
    },
    async (request) =>
      setDeviceVariable(deps, actorOf(request), request.params.device, request.params.name, request.body),
  );
  app.delete(
    '/api/v1/devices/:device/variables/:name',
    {
      schema: {
        tags,
        summary: 'Remove a device variable',
        params: deviceVarParams,
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await deleteDeviceVariable(deps, actorOf(request), request.params.device, request.params.name);
      return reply.status(204).send(null);
    },
  );
}
