import type { IncomingMessage } from 'node:http';
import type { Actor, UserPrincipal } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { assertSameOrigin, cookieOf, SESSION_COOKIE } from '../../infra/http/index.ts';
import type { AuthService } from './service.ts';

/**
 * The person opening a WebSocket the admin UI uses (the web terminal, VNC): `Authorization` (session token or API
 * key) or, from a browser, the session cookie, whose upgrade must come from this origin (any site's page may open
 * a WebSocket to any host: cross-site WebSocket hijacking). Devices and services are refused with `forbidden`,
 * saying `refusal`.
 */
export async function personOfBrowserUpgrade(
  request: IncomingMessage,
  auth: AuthService,
  refusal: string,
): Promise<Actor & { principal: UserPrincipal }> {
  const sourceIp = request.socket.remoteAddress ?? null;
  let header = request.headers.authorization;
  if (header === undefined) {
    const token = cookieOf(request, SESSION_COOKIE);
    if (token) {
      assertSameOrigin(request);
      header = `Bearer ${token}`;
    }
  }
  const principal = await auth.authenticate(header, sourceIp);
  if (principal.type !== 'user') throw new AppError('forbidden', refusal);
  return { principal, sourceIp };
}
