import { StreamError, StreamErrorCode } from '@fleetgate/protocol';

/**
 * How a browser's WebSocket to a device (the web terminal, VNC) is closed when its session ends other than by
 * its own doing. 1000–1011 are RFC 6455's own meanings; 4000–4999 are ours, so the browser can tell why the
 * session ended without parsing the reason. Each surface adds its own (the terminal's `exited`…).
 */
export const StreamCloseCode = {
  /** The server is stopping. */
  serverStopping: 1001,
  /** Something failed on the server; its log has the details. */
  internal: 1011,
  /** An administrator ended the session (`POST /api/v1/sessions/:id/terminate`). */
  terminated: 4000,
  /** The person lost access to the device (signed out, role or membership changed, device moved…). */
  accessRevoked: 4001,
  /** The device's link went away (it went offline) or it ended the stream without saying why. */
  deviceGone: 4002,
} as const;
export type StreamCloseCodeValue = (typeof StreamCloseCode)[keyof typeof StreamCloseCode];

/** The WebSocket close reason is at most 123 bytes (RFC 6455 section 5.5): cut at a character boundary. */
export function closeReason(reason: string): string {
  let cut = reason;
  while (Buffer.byteLength(cut) > 123) cut = cut.slice(0, -1);
  return cut;
}

/**
 * Why a session ended, from the error its stream was reset with: the stream router resets it with the reason an
 * administrator's termination or a lost access gave (features/sessions), the tunnel with a `StreamError` when
 * the device's connection closed. While the server stops, its tunnels close first: that is said instead, so the
 * session does not blame the device.
 */
export function whyStreamEnded(
  error: Error | null,
  stopping: boolean,
): { code: StreamCloseCodeValue; reason: string } {
  if (stopping)
    return { code: StreamCloseCode.serverStopping, reason: 'the server is stopping: reconnect in a moment' };
  if (error instanceof StreamError) {
    if (error.code === StreamErrorCode.connectionClosed)
      return {
        code: StreamCloseCode.deviceGone,
        reason: `the device went offline (its connection closed${error.reason ? `: ${error.reason}` : ''})`,
      };
    return {
      code: StreamCloseCode.deviceGone,
      reason: `the device reset the session (${error.code}${error.reason ? `: ${error.reason}` : ''})`,
    };
  }
  const message = error?.message ?? 'the session ended';
  if (message.startsWith('terminated by')) return { code: StreamCloseCode.terminated, reason: message };
  if (message.startsWith('access revoked')) return { code: StreamCloseCode.accessRevoked, reason: message };
  return { code: StreamCloseCode.deviceGone, reason: message };
}

/**
 * The person ended the session from their side (closed the browser tab, hung up the SSH client) while the device
 * still had something to say: the stream is reset so the device stops, but the session ended as the person
 * wanted, and is recorded as `closed`, not as an error.
 */
export class PersonClosed extends Error {
  override readonly name = 'PersonClosed';
}
