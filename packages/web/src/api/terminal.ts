/**
 * The web terminal's WebSocket (`GET /api/v1/devices/{device}/terminal`, described in the server's
 * features/web-terminal/protocol.ts): binary frames are the terminal's bytes both ways, the page sends
 * `{"type":"resize"}` as text, the server says the session id first and how the session ended last. Signed in by
 * the session cookie, which the browser sends with the handshake (same origin; ws:// over plain HTTP).
 */

/** Largest frame the server takes, in bytes; pastes are cut into frames well below it. */
const INPUT_FRAME_BYTES = 16 * 1024;

/** How a terminal session ended, for the person: why, and whether the shell's own exit. */
export interface TerminalEnd {
  /** The shell's exit code (or signal) when it exited; undefined when the session ended otherwise. */
  exit?: { code: number } | { signal: string };
  /** Why, in words: `exited with code 0`, `terminated by …`, `access revoked: …`, `the device went offline…`. */
  reason: string;
  /** The WebSocket close code (1000 exited, 4000 terminated, 4001 access revoked, 4002 device gone…). */
  code: number;
  /** The terminal never opened (refused before the handshake, or the server could not be reached). */
  refused: boolean;
}

export interface TerminalHandlers {
  /** The session is open; `sessionId` names it in the sessions list. */
  onSession(sessionId: string): void;
  /** Output from the device, to write to the terminal as it is (UTF-8). */
  onOutput(data: Uint8Array): void;
  onEnd(end: TerminalEnd): void;
}

export interface TerminalConnection {
  /** Sends what the person typed or pasted. */
  input(text: string): void;
  /** Sends the terminal's new size. */
  resize(cols: number, rows: number): void;
  /** Closes the session from this side (the shell is hung up on). */
  close(): void;
}

type ServerEvent =
  | { type: 'session'; id: string }
  | { type: 'exit'; code: number }
  | { type: 'exit'; signal: string }
  | { type: 'ended'; reason: string };

/** Opens a terminal on `device` (id or uuid) at the given size. */
export function openTerminal(
  device: string,
  size: { cols: number; rows: number },
  handlers: TerminalHandlers,
): TerminalConnection {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${location.host}/api/v1/devices/${encodeURIComponent(device)}/terminal?cols=${size.cols}&rows=${size.rows}`;
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  let opened = false;
  let last: Exclude<ServerEvent, { type: 'session' }> | undefined;
  ws.onopen = () => {
    opened = true;
  };
  ws.onmessage = (message: MessageEvent<ArrayBuffer | string>) => {
    if (typeof message.data !== 'string') {
      handlers.onOutput(new Uint8Array(message.data));
      return;
    }
    const event = JSON.parse(message.data) as ServerEvent;
    if (event.type === 'session') handlers.onSession(event.id);
    else last = event;
  };
  ws.onclose = (close) => {
    if (last?.type === 'exit') {
      const exit = 'code' in last ? { code: last.code } : { signal: last.signal };
      handlers.onEnd({ exit, reason: close.reason || 'the shell exited', code: close.code, refused: false });
      return;
    }
    const reason =
      last?.reason ||
      close.reason ||
      (opened ? 'the connection to fleetgate was lost' : 'the terminal could not be opened');
    handlers.onEnd({ reason, code: close.code, refused: !opened });
  };
  const send = (data: Uint8Array<ArrayBuffer> | string) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(data);
  };
  return {
    input(text) {
      const bytes = encoder.encode(text);
      for (let at = 0; at < bytes.length; at += INPUT_FRAME_BYTES)
        send(bytes.subarray(at, at + INPUT_FRAME_BYTES));
    },
    resize(cols, rows) {
      send(JSON.stringify({ type: 'resize', cols, rows }));
    },
    close() {
      ws.close(1000, 'closed by the person');
    },
  };
}
