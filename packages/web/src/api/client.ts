import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema.d.ts';

/**
 * The one way the UI talks to fleetgate: the public REST API, typed from the server's OpenAPI document
 * (schema.d.ts), signed in by the session cookie the browser holds (httpOnly: no script here ever sees a token).
 */

/** An answer other than 2xx, with the server's own message (`{error: {code, message}}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** Told when an answer says the sign-in no longer holds (401): the shell goes back to the sign-in page. */
const signedOutListeners = new Set<(message: string) => void>();
export function onSignedOut(listener: (message: string) => void): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

const errors: Middleware = {
  async onResponse({ request, response }) {
    if (response.ok) return undefined;
    let code = 'error';
    let message = `${response.status} ${response.statusText}`;
    let details: unknown;
    try {
      const body = (await response.clone().json()) as {
        error?: { code: string; message: string; details?: unknown };
      };
      if (body.error) ({ code, message, details } = body.error);
    } catch {
      // Not JSON: keep the status line.
    }
    if (response.status === 401 && !request.url.endsWith('/api/v1/auth/login')) {
      for (const listener of signedOutListeners) listener('Your session ended: sign in again.');
    }
    throw new ApiError(response.status, code, message, details);
  },
};

export const api = createClient<paths>({ baseUrl: '', credentials: 'same-origin' });
api.use(errors);

/** The data of an answer the middleware let through (every non-2xx threw). */
export function data<T>(answer: { data?: T }): T {
  return answer.data as T;
}

type JsonOf<R> = R extends { content: { 'application/json': infer T } } ? T : never;
/** The JSON body a route answers with `status`. */
export type Answer<
  P extends keyof paths,
  M extends keyof paths[P],
  S extends number = 200,
> = paths[P][M] extends {
  responses: infer R;
}
  ? S extends keyof R
    ? JsonOf<R[S]>
    : never
  : never;
/** The JSON body a route takes. */
export type Body<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  requestBody?: { content: { 'application/json': infer B } };
}
  ? B
  : never;

export type Me = Answer<'/api/v1/me', 'get'>;
export type Device = Answer<'/api/v1/devices/{device}', 'get'>;
export type DevicePage = Answer<'/api/v1/devices', 'get'>;
/** A device of a list: the keys its `fields` asked for, and `id`. */
export type ListedDevice = DevicePage['items'][number];
export type DeviceStatus = Device['status'];
export type Dashboard = Answer<'/api/v1/orgs/{orgId}/dashboard', 'get'>;
export type Fleet = Answer<'/api/v1/fleets/{fleetId}', 'get'>;
export type AuthSet = Answer<'/api/v1/auth-sets/{id}', 'get'>;
export type AuditEvent = Answer<'/api/v1/audit', 'get'>['items'][number];
export type Session = Answer<'/api/v1/sessions/{sessionId}', 'get'>;
export type ProvisioningKey = Answer<'/api/v1/fleets/{fleetId}/provisioning-keys', 'get'>['items'][number];
export type Member = Answer<'/api/v1/orgs/{orgId}/members', 'get'>['items'][number];
export type Variable = Answer<'/api/v1/fleets/{fleetId}/variables', 'get'>['items'][number];
