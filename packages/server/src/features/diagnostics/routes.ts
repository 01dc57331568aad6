import { diagnosticsStatuses, MAX_DIAGNOSTICS_REPORT } from '@fleetgate/protocol';
import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam, isoTime, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceRefParam } from '../devices/index.ts';
import type { StreamRouter } from '../remote-access/index.ts';
import {
  DIAGNOSTICS_KEPT_PER_DEVICE,
  DIAGNOSTICS_TIMEOUT_MS,
  getDeviceDiagnostics,
  listDeviceDiagnostics,
  runDeviceDiagnostics,
} from './service.ts';

const statusSchema = z.enum(diagnosticsStatuses);

const checkSchema = z.object({
  id: z.string().describe('stable identifier: disk, memory, load, time-sync, dns, tcp, agent…'),
  title: z.string(),
  status: statusSchema,
  summary: z.string(),
  durationMs: z.number(),
  data: z.record(z.string(), z.unknown()).describe("the check's measurements"),
});

const runSummarySchema = z.object({
  id: z.number().int(),
  device: z.object({ id: z.number().int(), uuid: z.string() }),
  sessionId: z.string().describe('the session of the run (GET /api/v1/sessions/{sessionId})'),
  requestedBy: z.object({ id: z.number().nullable(), label: z.string() }),
  startedAt: isoTime,
  finishedAt: isoTime,
  durationMs: z.number(),
  version: z.number().int().describe("the version of the agent's set of checks"),
  agentVersion: z.string(),
  status: statusSchema.describe('the worst status among the checks'),
  counts: z
    .object({
      ok: z.number().int(),
      warning: z.number().int(),
      failed: z.number().int(),
      unavailable: z.number().int(),
      timed_out: z.number().int(),
    })
    .describe('how many checks came out in each status'),
});

const runSchema = runSummarySchema.extend({ checks: z.array(checkSchema) });

export function registerDiagnosticsRoutes(app: TypedApp, deps: ServiceDeps, router: StreamRouter): void {
  const tags = ['diagnostics'];
  const deviceParams = z.object({ device: deviceRefParam });
  app.post(
    '/api/v1/devices/:device/diagnostics',
    {
      schema: {
        tags,
        summary: "Run the device's remote diagnostics now and store the report (operators and above)",
        description:
          'The agent runs its fixed set of read-only checks (disk, memory, load, time sync, DNS and TCP reachability ' +
          'of the server, the agent and its tunnel, network interfaces, failed systemd units, recent kernel messages), ' +
          'each with its own timeout, and answers one report, stored with the device’s history (the newest ' +
          `${DIAGNOSTICS_KEPT_PER_DEVICE}). Needs \`device.diagnose\` (operators and above), not shell rights; ` +
          'viewers get 403. The run is a session (surface `diagnostics`) and is audited. Answers within ' +
          `${DIAGNOSTICS_TIMEOUT_MS / 1000} s: 503 at once when the device is offline, or when it does not answer ` +
          "in time; 409 when the device is decommissioned or its agent is too old for diagnostics (`details.reason: 'agent_too_old'`); " +
          `502 when the device's report is malformed or over ${MAX_DIAGNOSTICS_REPORT / 1024} KiB (nothing is stored).`,
        params: deviceParams,
        response: { 201: runSchema },
      },
    },
    async (request, reply) => {
      const run = await runDeviceDiagnostics(deps, router, actorOf(request), request.params.device);
      return reply.status(201).send(run);
    },
  );
  app.get(
    '/api/v1/devices/:device/diagnostics',
    {
      schema: {
        tags,
        summary:
          "The device's stored diagnostics runs, newest first, without their checks (operators and above)",
        params: deviceParams,
        querystring: z.object(pageQuery),
        response: { 200: pageOf(runSummarySchema) },
      },
    },
    async (request) => listDeviceDiagnostics(deps, actorOf(request), request.params.device, request.query),
  );
  app.get(
    '/api/v1/devices/:device/diagnostics/:runId',
    {
      schema: {
        tags,
        summary: 'One stored diagnostics run with its checks (operators and above)',
        params: z.object({ device: deviceRefParam, runId: idParam }),
        response: { 200: runSchema },
      },
    },
    async (request) =>
      getDeviceDiagnostics(deps, actorOf(request), request.params.device, request.params.runId),
  );
}
