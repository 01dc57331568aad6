import { z } from 'zod';

/**
 * The web terminal's wire protocol: what flows over the WebSocket `GET /api/v1/devices/:device/terminal`
 * between the browser (xterm.js) and the server, read top to bottom.
 *
 * browser → server
 *   binary frame   the terminal's input: bytes for the shell's pty (keys typed, text pasted), at most
 *                  `MAX_INPUT_FRAME` bytes a frame
 *   text frame     JSON control, one of `TerminalControl`: `{"type":"resize","cols":N,"rows":N}`
 *
 * server → browser
 *   text frame     `{"type":"session","id":"…"}` first: the session's id (sessions list, recording)
 *   binary frame   the terminal's output, as the pty wrote it (UTF-8, escape sequences and all)
 *   text frame     `{"type":"exit","code":N}` or `{"type":"exit","signal":"…"}`: the shell ended; or
 *                  `{"type":"ended","reason":"…"}`: the session ended otherwise (an administrator ended it,
 *                  access was revoked, the device went offline, the server is stopping, bad input)
 *   close          a `TerminalCloseCode` and the same reason, right after the `exit`/`ended` frame
 *
 * Every text frame from the browser is checked before use: not JSON, not a known control or out of range
 * (`TERMINAL_MAX_SIZE`) closes with `invalidMessage`; a frame larger than `MAX_INPUT_FRAME` closes with 1009.
 */

/** Largest frame the browser may send, in bytes (64 KiB, the exec sub-protocol's largest stdin message). */
export const MAX_INPUT_FRAME = 64 * 1024;

/** Largest terminal, in columns and rows: xterm.js on a very wide screen stays far below it. */
export const TERMINAL_MAX_SIZE = 1000;

/** The terminal's size when the browser does not say (`?cols=&rows=` on the upgrade). */
export const DEFAULT_TERMINAL_SIZE = { cols: 80, rows: 24 } as const;

/** The `TERM` the shell sees: what xterm.js emulates. */
export const TERMINAL_TYPE = 'xterm-256color';

const size = z.number().int().min(1).max(TERMINAL_MAX_SIZE);

/** A control message from the browser (a text frame). */
export const terminalControlSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('resize'), cols: size, rows: size }),
]);
export type TerminalControl = z.infer<typeof terminalControlSchema>;

/** A text frame from the server. */
export type TerminalEvent =
  | { type: 'session'; id: string }
  | { type: 'exit'; code: number }
  | { type: 'exit'; signal: string }
  | { type: 'ended'; reason: string };

/**
 * How the server closes the WebSocket. 1000–1011 are RFC 6455's own meanings; 4000–4999 are ours, so the
 * browser can tell why the session ended without parsing the reason.
 */
export const TerminalCloseCode = {
  /** The shell (or command) exited; the `exit` frame before says how. */
  exited: 1000,
  /** The server is stopping. */
  serverStopping: 1001,
  /** A text frame that is not a valid control message. */
  invalidMessage: 1007,
  /** A frame larger than `MAX_INPUT_FRAME` (ws closes with it by itself). */
  messageTooBig: 1009,
  /** Something failed on the server; its log has the details. */
  internal: 1011,
  /** An administrator ended the session (`POST /api/v1/sessions/:id/terminate`). */
  terminated: 4000,
  /** The person lost access to the device (signed out, role or membership changed, device moved…). */
  accessRevoked: 4001,
  /** The device's link went away (it went offline) or it ended the stream without saying why. */
  deviceGone: 4002,
} as const;
export type TerminalCloseCodeValue = (typeof TerminalCloseCode)[keyof typeof TerminalCloseCode];

/** The WebSocket close reason is at most 123 bytes (RFC 6455 section 5.5): cut at a character boundary. */
export function closeReason(reason: string): string {
  let cut = reason;
  while (Buffer.byteLength(cut) > 123) cut = cut.slice(0, -1);
  return cut;
}
