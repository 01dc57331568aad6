import { expect } from 'vitest';
import type { ApiAnswer, TestServer } from '../harness.ts';

/**
 * Asserts the status of an answer and hands back its body. On a mismatch the failure shows the whole answer,
 * so a wrong status explains itself.
 */
// biome-ignore lint/suspicious/noExplicitAny: answers are read loosely and asserted on, as in the harness.
export function check(answer: ApiAnswer, status: number): any {
  expect(answer.status, `${answer.status} ${JSON.stringify(answer.body)}`).toBe(status);
  return answer.body;
}

/**
 * Like `server.api`, but the request comes from `remoteAddress` (the socket's address, as a real client's
 * would): sign-in limits and audit source addresses are per source, and every other request comes from
 * 127.0.0.1.
 */
export async function apiFrom(
  server: TestServer,
  remoteAddress: string,
  method: string,
  url: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiAnswer> {
  const response = await server.app.inject({
    method: method as 'GET',
    url,
    remoteAddress,
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
    ...(options.body !== undefined ? { payload: JSON.stringify(options.body) } : {}),
  });
  const text = response.body;
  const json = (response.headers['content-type'] ?? '').toString().includes('json') && text;
  return { status: response.statusCode, body: json ? JSON.parse(text) : text, headers: response.headers };
}

/** Creates a user as the server admin and answers its id. */
export async function createUser(server: TestServer, email: string, password: string): Promise<number> {
  const body = check(
    await server.api('POST', '/api/v1/users', { token: server.adminToken, body: { email, password } }),
    201,
  );
  return body.id as number;
}
