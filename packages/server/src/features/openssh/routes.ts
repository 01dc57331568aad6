import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { listAuthorizedKeys } from './service.ts';

const authorizedKeySchema = z.object({
  id: z.number().describe('the key id, for `fleetgate ssh-proxy <id>`'),
  algorithm: z.string(),
  publicKey: z.string().describe('"<algorithm> <base64>", as in authorized_keys'),
  fingerprint: z.string().describe('SHA256:… as OpenSSH prints it (sshd `%f`)'),
});

/** `GET /api/v1/ssh/authorized-keys`, for sshd's `AuthorizedKeysCommand`. */
export function registerOpenSshRoutes(app: TypedApp, deps: ServiceDeps): void {
  app.get(
    '/api/v1/ssh/authorized-keys',
    {
      config: { serves: 'ssh_key.lookup' },
      schema: {
        tags: ['remote access'],
        summary:
          "Registered SSH keys for sshd's AuthorizedKeysCommand (`fleetgate ssh-authorized-keys`): by login, " +
          "by fingerprint, or both; for the OpenSSH bastion's service credential (and server administrators) only",
        querystring: z.object({
          login: z.string().min(1).max(320).optional().describe("the person's e-mail or unique local part"),
          fingerprint: z
            .string()
            .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'an OpenSSH SHA256 fingerprint')
            .optional()
            .describe('SHA256:… (sshd %f)'),
        }),
        response: { 200: z.object({ items: z.array(authorizedKeySchema) }) },
      },
    },
    async (request) => ({ items: await listAuthorizedKeys(deps, actorOf(request), request.query) }),
  );
}
