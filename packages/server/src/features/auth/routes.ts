import { z } from 'zod';
import { requireUser } from '../../infra/access/index.ts';
import {
  actorOf,
  assertSameOrigin,
  errorBody,
  sessionCookieHeader,
  type TypedApp,
} from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { meSchema, passwordString, userSchema } from '../users/routes.ts';
import { me, updateUser, userRecord } from '../users/service.ts';
import type { AuthService } from './service.ts';

export function registerAuthRoutes(app: TypedApp, deps: ServiceDeps, auth: AuthService): void {
  app.post(
    '/api/v1/auth/login',
    {
      config: { public: true },
      schema: {
        tags: ['auth'],
        summary: 'Sign in with e-mail and password; answers a session token for `Authorization: Bearer`',
        description:
          'With `cookie: true` (browsers) the session goes into an httpOnly, SameSite=Strict cookie instead of ' +
          'the answer; requests signed in by that cookie that change something must come from this origin ' +
          '(`Origin` / `Sec-Fetch-Site`), and `POST /api/v1/auth/logout` removes it.',
        security: [],
        body: z.strictObject({
          email: z.string().trim().min(3).max(254),
          password: z.string().min(1).max(1024),
          cookie: z
            .boolean()
            .optional()
            .describe('set the session as an httpOnly cookie and leave the token out of the answer'),
        }),
        response: {
          200: z.object({
            token: z.string().optional().describe('absent with `cookie: true`'),
            expiresAt: z.string(),
            user: userSchema,
          }),
          401: errorBody,
          429: errorBody,
        },
      },
    },
    async (request, reply) => {
      const { cookie, ...credentials } = request.body;
      // A cross-site page must not sign the browser in (to the attacker's account) either.
      if (cookie) assertSameOrigin(request);
      const session = await auth.login(credentials, request.ip);
      const user = await userRecord(deps.db, session.userId);
      const expiresAt = new Date(session.expiresAt).toISOString();
      if (!cookie) return { token: session.token, expiresAt, user };
      const maxAge = Math.max(0, Math.floor((session.expiresAt - Date.now()) / 1000));
      reply.header('set-cookie', sessionCookieHeader(request, session.token, maxAge));
      return { expiresAt, user };
    },
  );

  app.post(
    '/api/v1/auth/logout',
    {
      schema: {
        tags: ['auth'],
        summary: "Revoke the session token of this request (and remove the browser's session cookie)",
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await auth.logout(actorOf(request));
      if (request.viaSessionCookie) reply.header('set-cookie', sessionCookieHeader(request, '', 0));
      return reply.status(204).send(null);
    },
  );

  app.get(
    '/api/v1/me',
    {
      schema: {
        tags: ['auth'],
        summary: 'Who am I: the signed-in user and their memberships',
        response: { 200: meSchema },
      },
    },
    async (request) => me(deps, actorOf(request)),
  );

  app.patch(
    '/api/v1/me',
    {
      schema: {
        tags: ['auth'],
        summary:
          'Change my name or password (a new password needs currentPassword and ends my other sessions)',
        body: z.strictObject({
          name: z.string().trim().min(1).max(128).optional(),
          password: passwordString.optional(),
          currentPassword: z.string().max(1024).optional(),
        }),
        response: { 200: meSchema },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      await updateUser(deps, actor, requireUser(actor.principal).userId, request.body);
      return me(deps, actor);
    },
  );
}
