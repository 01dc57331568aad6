import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceRefParam, linkKinds } from '../devices/index.ts';
import { listDeviceConnections, listStateHistory, STATE_HISTORY_DAYS } from './service.ts';

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

const bytesPair = z.object({ usedBytes: z.number(), totalBytes: z.number() }).nullable();
const stateSampleSchema = z.object({
  at: z.string(),
  cpuPercent: z.number().nullable(),
  memory: bytesPair,
  disk: bytesPair,
  temperatureCelsius: z.number().nullable(),
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
  app.get(
    '/api/v1/devices/:device/state-history',
    {
      schema: {
        tags: ['devices'],
        summary: `The numbers of a device's state reports over time (CPU, memory, disk, temperature), oldest first: at most one sample a minute, kept ${STATE_HISTORY_DAYS} days`,
        params: z.object({ device: deviceRefParam }),
        querystring: z.object({
          since: z.coerce
            .date()
            .optional()
            .describe('the oldest sample wanted (ISO 8601 time); default: 24 hours ago'),
        }),
        response: { 200: z.object({ since: z.string(), items: z.array(stateSampleSchema) }) },
      },
    },
    async (request) =>
      listStateHistory(deps, actorOf(request), request.params.device, request.query.since?.getTime()),
  );
}
