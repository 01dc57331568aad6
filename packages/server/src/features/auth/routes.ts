import { z } from 'zod';
import { requireUser } from '../../infra/access/index.ts';
import { actorOf, errorBody, type TypedApp } from '../../infra/http/index.ts';
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
        security: [],
        body: z.strictObject({
          email: z.string().trim().min(3).max(254),
          password: z.string().min(1).max(1024),
        }),
        response: {
          200: z.object({ token: z.string(), expiresAt: z.string(), user: userSchema }),
          401: errorBody,
          429: errorBody,
        },
      },
    },
    async (request) => {
      const session = await auth.login(request.body, request.ip);
      const user = await userRecord(deps.db, session.userId);
      return { token: session.token, expiresAt: new Date(session.expiresAt).toISOString(), user };
    },
  );

  app.post(
    '/api/v1/auth/logout',
    {
      schema: {
        tags: ['auth'],
        summary: 'Revoke the session token of this request',
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await auth.logout(actorOf(request));
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
