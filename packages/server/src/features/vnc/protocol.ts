import { StreamCloseCode } from '../remote-access/index.ts';

/**
 * VNC in the browser, on the wire: `GET /api/v1/devices/:device/ports/:port/vnc` upgraded to a WebSocket carries
 * the bytes of the device's VNC port as websockify does (noVNC speaks it):
 *
 * browser → server   binary frames: bytes for the device's port (RFB from the viewer), at most
 *                    `MAX_VNC_FRAME` bytes a frame; a text frame closes with `unsupportedData`
 * server → browser   binary frames: the port's bytes (RFB from the VNC server)
 * close              a `VncCloseCode` and its reason
 *
 * The subprotocol is `binary` when the browser asks for it (older noVNC did; 1.7 asks for none), none otherwise;
 * any other subprotocol is refused before the handshake. The 101 answer names the session in `Fleetgate-Session`.
 */

/** Largest frame the browser may send, in bytes (1 MiB: a pasted clipboard; input events are a few bytes). */
export const MAX_VNC_FRAME = 1024 * 1024;

/** The only WebSocket subprotocol: frames are binary (websockify also knew `base64`, long gone from noVNC). */
export const VNC_SUBPROTOCOL = 'binary';

/**
 * How the server closes the WebSocket: the codes every browser stream to a device shares (`StreamCloseCode`:
 * 1001 server stopping, 1011 internal, 4000 ended by an administrator, 4001 access revoked, 4002 device gone),
 * and VNC's own: 1000 the VNC server closed the connection; 1003 a text frame; 1009 a frame larger than
 * `MAX_VNC_FRAME` (ws closes with it by itself).
 */
export const VncCloseCode = {
  ...StreamCloseCode,
  closed: 1000,
  unsupportedData: 1003,
  messageTooBig: 1009,
} as const;
export type VncCloseCodeValue = (typeof VncCloseCode)[keyof typeof VncCloseCode];
