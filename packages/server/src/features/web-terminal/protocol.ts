import { z } from 'zod';
import { StreamCloseCode } from '../remote-access/index.ts';

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
 * How the server closes the WebSocket: the codes every browser stream to a device shares (`StreamCloseCode`:
 * 1001 server stopping, 1011 internal, 4000 ended by an administrator, 4001 access revoked, 4002 device gone),
 * and the terminal's own: 1000 the shell (or command) exited, the `exit` frame before says how; 1007 a text
 * frame that is not a valid control message; 1009 a frame larger than `MAX_INPUT_FRAME` (ws closes with it by
 * itself).
 */
export const TerminalCloseCode = {
  ...StreamCloseCode,
  exited: 1000,
  invalidMessage: 1007,
  messageTooBig: 1009,
} as const;
export type TerminalCloseCodeValue = (typeof TerminalCloseCode)[keyof typeof TerminalCloseCode];
