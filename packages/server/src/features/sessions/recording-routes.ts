import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { orgIdOf, orgRefParam } from '../orgs/index.ts';
import { getSessionRecording, getSessionRecordingSetting, setSessionRecordingSetting } from './recording.ts';

const settingSchema = z.object({
  orgId: z.number(),
  enabled: z.boolean().describe('shell sessions (SSH gateway, web terminal) are recorded (asciicast v2)'),
});

/** Recording settings per organization and recordings per session (see recording.ts). */
export function registerRecordingRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['remote access'];
  app.get(
    '/api/v1/orgs/:orgId/session-recording',
    {
      schema: {
        tags,
        summary: "Whether the organization's shell sessions are recorded",
        params: z.object({ orgId: orgRefParam }),
        response: { 200: settingSchema },
      },
    },
    async (request) =>
      getSessionRecordingSetting(
        deps,
        actorOf(request),
        await orgIdOf(deps.db, actorOf(request), request.params.orgId),
      ),
  );
  app.put(
    '/api/v1/orgs/:orgId/session-recording',
    {
      schema: {
        tags,
        summary: "Turn recording of the organization's shell sessions on or off (admins)",
        params: z.object({ orgId: orgRefParam }),
        body: z.strictObject({ enabled: z.boolean() }),
        response: { 200: settingSchema },
      },
    },
    async (request) =>
      setSessionRecordingSetting(
        deps,
        actorOf(request),
        await orgIdOf(deps.db, actorOf(request), request.params.orgId),
        request.body.enabled,
      ),
  );
  app.get(
    '/api/v1/sessions/:sessionId/recording',
    {
      schema: {
        tags,
        summary:
          'The recording of a shell session, as asciicast v2 (application/x-asciicast: a JSON header line, then ' +
          '[seconds, "o" | "r", data] lines); replay it with `fleetgate sessions play <id>` or asciinema',
        description:
          "For operators and above of the session's organization (or fleet), who may open a shell there: " +
          'viewers get 403, people who cannot see the session 404.',
        params: z.object({
          sessionId: z
            .string()
            .regex(/^[0-9a-f]{16,32}$/, 'a session id is 16 to 32 lower-case hex digits')
            .describe('session id (from GET /api/v1/sessions)'),
        }),
        response: { 200: z.string().describe('asciicast v2 text') },
      },
    },
    async (request, reply) => {
      const text = await getSessionRecording(deps, actorOf(request), request.params.sessionId);
      // A Buffer is sent as it is: the JSON serializer would quote the text.
      reply.type('application/x-asciicast; charset=utf-8');
      return Buffer.from(text) as unknown as string;
    },
  );
}
