/**
 * Credentials also stop holding when they expire, and no write announces that: live sessions are checked every
 * minute as well, so a sign-in (or an API or service key) that expires ends what it held open within a minute.
 * The minute passes on fake intervals only (`setInterval`); timeouts, clocks and sockets stay real, and the
 * server, the agent's tunnel and the person's stream are real listeners and clients.
 */
import type net from 'node:net';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { sha256Hex } from '../../src/infra/crypto/index.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../harness.ts';
import {
  liveEcho,
  type newDevice,
  onlineDevice,
  sessionOutcome,
  startEchoService,
  startTunnelServer,
  type TestAgent,
  within,
} from './helpers.ts';

let server: Awaited<ReturnType<typeof startTunnelServer>>;
let device: Awaited<ReturnType<typeof newDevice>>;
let agent: TestAgent;
let echo: net.Server;
let echoPort: number;

beforeAll(async () => {
  // Before the server starts, so that its once-a-minute check is one of the fake intervals.
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  server = await startTunnelServer();
  ({ service: echo, port: echoPort } = await startEchoService());
  ({ device, agent } = await onlineDevice(server, 'expiry-fleet', [echoPort]));
});

afterAll(async () => {
  agent?.close();
  echo?.close();
  await server?.close();
  vi.useRealTimers();
});

it('a sign-in that expires ends the streams it held open within a minute, with no write to announce it', async () => {
  const token = await server.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  const { socket, sessionId, ended } = await liveEcho(server.baseUrl, token, device.uuid, echoPort);
  try {
    // The sign-in's time is up (sign-ins last hours: here, as if they had passed).
    await server.database.db
      .updateTable('sessions')
      .set({ expires_at: Date.now() - 1000 })
      .where('token_hash', '=', sha256Hex(token))
      .execute();
    vi.advanceTimersByTime(60_000);

    expect(await within(ended)).toMatchObject({ code: 'ECONNRESET' });
    expect(await sessionOutcome(server, sessionId)).toBe(
      'access revoked: the sign-in it was opened with was revoked or has expired',
    );
  } finally {
    socket.destroy();
  }
});
