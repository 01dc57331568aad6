import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { auditScopes, listAuditEvents } from './service.ts';

const auditEventSchema = z.object({
  id: z.number(),
  at: z.string(),
  orgId: z.number().nullable(),
  actor: z.object({ type: z.string(), id: z.number().nullable(), label: z.string() }),
  action: z.string(),
  resourceType: z.string(),
  resourceId: z.string().nullable(),
  sourceIp: z.string().nullable(),
  outcome: z.string(),
  details: z.record(z.string(), z.unknown()).nullable(),
});

export function registerAuditRoutes(app: TypedApp, deps: ServiceDeps): void {
  app.get(
    '/api/v1/audit',
    {
      schema: {
        tags: ['audit'],
        summary:
          'The audit log: who did what, to which resource, from where, with what outcome (newest first)',
        description:
          'Lists the events of the organizations where you are an owner or admin and your own actions; server ' +
          'administrators also get the server-wide events (orgId null: sign-ins, failed ones too, users, API ' +
          'and service keys, SSH keys, recovery). `orgId` narrows to one organization, `scope=server` to the ' +
          'server-wide events (server administrators only, else 403; not with orgId, 400).',
        querystring: z.object({
          ...pageQuery,
          orgId: idParam.optional(),
          scope: z
            .enum(auditScopes)
            .optional()
            .describe(
              'server: only the server-wide events, those of no organization (server administrators)',
            ),
          actor: z.string().max(254).optional().describe('e-mail or user id'),
          action: z.string().max(64).optional(),
          resourceType: z.string().max(32).optional(),
          resourceId: z.string().max(64).optional(),
          session: z
            .string()
            .regex(/^[0-9a-f]{16,32}$/, 'a session id is 16 to 32 lower-case hex digits')
            .optional()
            .describe(
              "a session id (GET /api/v1/sessions): only that session's events (its stream opening and " +
                'closing, recording, termination)',
            ),
          since: z.coerce.date().optional(),
          until: z.coerce.date().optional(),
        }),
        response: { 200: pageOf(auditEventSchema) },
      },
    },
    async (request) => listAuditEvents(deps, actorOf(request), request.query),
  );
}
