import { randomBytes } from 'node:crypto';
import { apiFrom, check } from '../api/helpers.ts';
import type { ApiAnswer, TestServer } from '../harness.ts';

/** A device as balena's supervisor makes itself: a random 32-hex uuid and a 32-hex api key. */
export function newDeviceIdentity(): { uuid: string; apiKey: string } {
  return { uuid: randomBytes(16).toString('hex'), apiKey: randomBytes(16).toString('hex') };
}

export function basic(uuid: string, key: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${uuid}:${key}`).toString('base64')}` };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** Creates a provisioning key for a fleet as `token` (default: the server admin) and answers it. */
export async function createProvisioningKey(
  server: TestServer,
  fleetId: number,
  extra: Record<string, unknown> = {},
  token = server.adminToken,
): Promise<{ id: number; key: string; uses: number; maxUses: number | null }> {
  return check(
    await server.api('POST', `/api/v1/fleets/${fleetId}/provisioning-keys`, {
      token,
      body: { name: 'factory line 1', ...extra },
    }),
    201,
  );
}

/** `POST /api/v1/devices/register` as a device would, from `source` (its own address, default 127.0.0.1). */
export function register(
  server: TestServer,
  provisioningKey: string | undefined,
  body: unknown,
  source = '127.0.0.1',
): Promise<ApiAnswer> {
  return apiFrom(server, source, 'POST', '/api/v1/devices/register', {
    body,
    headers: provisioningKey === undefined ? {} : bearer(provisioningKey),
  });
}

/** Registers a fresh device into the key's fleet and answers its identity and id. */
export async function registerNewDevice(
  server: TestServer,
  provisioningKey: string,
  deviceType = 'raspberrypi4-64',
): Promise<{ id: number; uuid: string; apiKey: string }> {
  const identity = newDeviceIdentity();
  const answer = check(
    await register(server, provisioningKey, {
      uuid: identity.uuid,
      device_type: deviceType,
      api_key: identity.apiKey,
    }),
    201,
  );
  return { id: answer.id, ...identity };
}

/** `GET /api/v1/device/self` with the given headers. */
export function deviceSelf(server: TestServer, headers: Record<string, string>): Promise<ApiAnswer> {
  return server.api('GET', '/api/v1/device/self', { headers });
}
