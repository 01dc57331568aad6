import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { getSession, listSessions, sessionSurfaces, terminateSession } from './service.ts';

/** A session id, as the stream router hands it out: random hex. */
export const sessionIdParam = z
  .string()
  .regex(/^[0-9a-f]{16,32}$/, 'a session id is 16 to 32 lower-case hex digits')
  .describe('session id (from GET /api/v1/sessions)');

const sessionSchema = z.object({
  id: z.string(),
  orgId: z.number(),
  fleetId: z.number(),
  device: z.object({ id: z.number(), uuid: z.string(), name: z.string() }),
  user: z.object({ id: z.number().nullable(), label: z.string() }).describe('who opened the session'),
  surface: z.string().describe(`how the person came: ${sessionSurfaces.join(', ')}`),
  port: z.number().nullable().describe('the device port; null when the target is not a port'),
  target: z.string(),
  clientAddress: z.string().nullable(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  live: z.boolean(),
  bytesToDevice: z.number().describe('bytes sent to the device (so far, while live)'),
  bytesFromDevice: z.number().describe('bytes received from the device (so far, while live)'),
  outcome: z.string().nullable().describe('how it ended: closed, reset: …, terminated by …; null while live'),
  terminatedBy: z.object({ id: z.number().nullable(), label: z.string() }).nullable(),
  instance: z
    .string()
    .nullable()
    .describe(
      'the fleetgate instance relaying it, as its /readyz names it (several instances on one database)',
    ),
});

const booleanQuery = z.enum(['true', 'false']).transform((text) => text === 'true');

export function registerSessionRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['remote access'];
  app.get(
    '/api/v1/sessions',
    {
      schema: {
        tags,
        summary:
          "People's sessions to devices (tunnel, SSH, CONNECT), live and ended, newest first (viewers and above)",
        querystring: z.object({
          ...pageQuery,
          orgId: idParam.optional(),
          device: z
            .string()
            .regex(/^[0-9a-fA-F]{32}$/, 'a device uuid')
            .optional()
            .describe('device uuid'),
          live: booleanQuery.optional().describe('true: only live sessions; false: only ended ones'),
          surface: z
            .string()
            .max(16)
            .optional()
            .describe(`only one surface: ${sessionSurfaces.join(', ')}`),
          user: z.string().max(254).optional().describe('e-mail of who opened the sessions'),
        }),
        response: { 200: pageOf(sessionSchema) },
      },
    },
    async (request) => listSessions(deps, actorOf(request), request.query),
  );
  app.get(
    '/api/v1/sessions/:sessionId',
    {
      schema: {
        tags,
        summary: 'One session to a device',
        params: z.object({ sessionId: sessionIdParam }),
        response: { 200: sessionSchema },
      },
    },
    async (request) => getSession(deps, actorOf(request), request.params.sessionId),
  );
  app.post(
    '/api/v1/sessions/:sessionId/terminate',
    {
      schema: {
        tags,
        summary:
          'End a live session at once (admins): the person and the device see the connection reset; 409 when it already ended',
        params: z.object({ sessionId: sessionIdParam }),
        response: { 200: sessionSchema },
      },
    },
    async (request) => terminateSession(deps, actorOf(request), request.params.sessionId),
  );
}
