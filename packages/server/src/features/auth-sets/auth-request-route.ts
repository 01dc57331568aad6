import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { AUTH_REQUEST_BODY_LIMIT, handleAuthRequest } from './auth-request.ts';

/**
 * `POST <path>`: a device's signed auth request (Mender's wire format). The body is kept as the exact bytes
 * received — the signature covers them — by a content type parser that only this route's scope has.
 */
export function registerAuthRequestRoute(
  app: TypedApp,
  deps: ServiceDeps,
  path: string,
  options: { hide?: boolean } = {},
): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: AUTH_REQUEST_BODY_LIMIT },
      (_request, body, done) => done(null, body),
    );
    scope.post(
      path,
      {
        config: { public: true },
        schema: {
          hide: options.hide ?? false,
          // Devices prove who they are by the signature, not by a bearer token.
          security: [],
          tags: ['device-auth'],
          summary:
            'Signed device auth request (Mender): body {"id_data","pubkey","tenant_token"}, header X-MEN-Signature = base64 signature of the exact body. 200 answers the device token (application/jwt); 401 while pending, rejected or decommissioned',
        },
      },
      async (request, reply) => {
        const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const signature = request.headers['x-men-signature'];
        const { token } = await handleAuthRequest(deps, {
          raw,
          signature: Array.isArray(signature) ? undefined : signature,
          authorization: request.headers.authorization,
          sourceIp: request.ip,
        });
        return reply.status(200).type('application/jwt').send(token);
      },
    );
  });
}
