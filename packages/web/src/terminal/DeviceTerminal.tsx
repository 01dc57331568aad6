import '@xterm/xterm/css/xterm.css';
import { Alert, Badge, Box, Button, Group, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'react';
import { ApiError, api, type Device, data } from '../api/client.ts';
import { streamEndTitles } from '../api/stream-end.ts';
import { openTerminal, type TerminalConnection, type TerminalEnd } from '../api/terminal.ts';

type State =
  | { kind: 'connecting' }
  | { kind: 'open'; sessionId: string | undefined }
  | { kind: 'ended'; end: TerminalEnd; explanation?: string }
  | { kind: 'closed' };

/** Close codes the server gives (features/web-terminal/protocol.ts), as headings. */
const endTitles: Record<number, string> = {
  ...streamEndTitles,
  1000: 'The shell exited',
  1007: 'The terminal sent something the server refused',
  1009: 'The terminal sent something the server refused',
};

/**
 * A shell on the device in the browser: xterm.js over the web terminal's WebSocket, sized to its box (and resized
 * with it), with the session's end and its reason shown under it and a way to open a new one.
 */
export function DeviceTerminal({ device }: { device: Device }) {
  const [attempt, setAttempt] = useState(0);
  // A new session is a new terminal: remounted, with nothing of the last one's screen or state.
  return <TerminalSession key={attempt} device={device} reconnect={() => setAttempt((n) => n + 1)} />;
}

function TerminalSession({ device, reconnect }: { device: Device; reconnect: () => void }) {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>({ kind: 'connecting' });
  /** Closes the open session from this side (set while one is open). */
  const disconnect = useRef<(() => void) | undefined>(undefined);
  const access = useQuery({
    queryKey: ['device', device.uuid, 'terminal'],
    queryFn: async () =>
      data(await api.GET('/api/v1/devices/{device}/terminal', { params: { path: { device: device.uuid } } })),
  });

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const terminal = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: '#101113', foreground: '#e9ecef' },
    });
    const fit = new FitAddon();
    terminal.loadAddon(fit);
    terminal.open(element);
    fit.fit();
    terminal.focus();
    let connection: TerminalConnection | undefined;
    let leaving = false;
    let disconnected = false;
    connection = openTerminal(
      device.uuid,
      { cols: terminal.cols, rows: terminal.rows },
      {
        onSession: (sessionId) => setState({ kind: 'open', sessionId }),
        onOutput: (output) => terminal.write(output),
        onEnd: (end) => {
          connection = undefined;
          disconnect.current = undefined;
          if (leaving) return;
          // A dead terminal takes no more input and shows no cursor.
          terminal.options.disableStdin = true;
          terminal.write('\x1b[?25l');
          if (disconnected) {
            setState({ kind: 'closed' });
            return;
          }
          setState({ kind: 'ended', end });
          if (end.refused)
            void explainRefusal(device.uuid).then((explanation) =>
              setState({ kind: 'ended', end, explanation }),
            );
        },
      },
    );
    disconnect.current = () => {
      disconnected = true;
      connection?.close();
    };
    terminal.attachCustomKeyEventHandler((event) => copyOrPaste(terminal, event));
    const typed = terminal.onData((text) => connection?.input(text));
    const resized = terminal.onResize(({ cols, rows }) => connection?.resize(cols, rows));
    // The box follows the window and the page's layout; the terminal follows the box.
    // Hidden (another tab of the page shows), the box has no size: the terminal keeps the one it had.
    const observer = new ResizeObserver(() => {
      if (element.clientWidth > 0) fit.fit();
    });
    observer.observe(element);
    return () => {
      leaving = true;
      observer.disconnect();
      typed.dispose();
      resized.dispose();
      connection?.close();
      terminal.dispose();
    };
  }, [device.uuid]);

  return (
    <Box>
      <Group justify="space-between" mb="xs">
        <Group gap="xs">
          <Text size="sm" aria-live="polite" data-terminal-state={state.kind}>
            {state.kind === 'connecting' && 'Connecting…'}
            {state.kind === 'open' && `Connected to ${device.name}`}
            {state.kind === 'ended' && 'Session ended'}
            {state.kind === 'closed' && 'Disconnected'}
          </Text>
          {access.data?.recorded && (
            <Badge color="red" variant="light" title="The organization records shell sessions">
              recorded
            </Badge>
          )}
        </Group>
        {state.kind === 'open' || state.kind === 'connecting' ? (
          <Button size="xs" variant="default" onClick={() => disconnect.current?.()}>
            Disconnect
          </Button>
        ) : (
          <Button size="xs" onClick={reconnect}>
            Reconnect
          </Button>
        )}
      </Group>
      <Box
        ref={box}
        data-testid="terminal"
        style={{
          height: '60vh',
          minHeight: 240,
          background: '#101113',
          padding: 6,
          borderRadius: 4,
          overflow: 'hidden',
        }}
      />
      {state.kind === 'ended' && (
        <Alert
          mt="sm"
          role="status"
          color={state.end.code === 1000 ? 'gray' : 'red'}
          title={
            state.end.refused
              ? 'The terminal could not be opened'
              : (endTitles[state.end.code] ?? 'Session ended')
          }
        >
          <Text size="sm">{state.explanation ?? describeEnd(state.end)}</Text>
          <Button mt="xs" size="xs" onClick={reconnect}>
            Open a new session
          </Button>
        </Alert>
      )}
    </Box>
  );
}

/**
 * Copy and paste as people expect of a terminal in a browser: Ctrl+V (and Ctrl+Shift+V) pastes, through the browser's
 * own paste, which xterm.js passes to the shell (bracketed when the shell asks); Ctrl+C over a selection, and
 * Ctrl+Shift+C, copy the selection; Ctrl+C alone is ^C. Selecting with the mouse and the browser's menu work as
 * well. Answers whether xterm.js should handle the key itself.
 */
function copyOrPaste(terminal: Terminal, event: KeyboardEvent): boolean {
  if (event.type !== 'keydown' || !event.ctrlKey || event.altKey || event.metaKey) return true;
  const key = event.key.toLowerCase();
  if (key === 'v') return false;
  if (key === 'c' && (event.shiftKey || terminal.hasSelection())) {
    // Ctrl+Shift+C would open the browser's element inspector: copy here instead.
    event.preventDefault();
    const selection = terminal.getSelection();
    if (selection) void navigator.clipboard?.writeText(selection).catch(() => document.execCommand('copy'));
    return false;
  }
  return true;
}

function describeEnd(end: TerminalEnd): string {
  // The explanation is on its way (see explainRefusal).
  if (end.refused) return 'Finding out why…';
  if (end.exit && 'code' in end.exit) return `The shell exited with code ${end.exit.code}.`;
  if (end.exit) return `The shell was ended by signal ${end.exit.signal}.`;
  return `${end.reason.charAt(0).toUpperCase()}${end.reason.slice(1)}.`;
}

/**
 * A browser is not told why a WebSocket handshake was refused: the same URL without the upgrade says whether the
 * person may open a terminal there; if they may, the device is offline or does not run shells.
 */
async function explainRefusal(device: string): Promise<string> {
  try {
    await api.GET('/api/v1/devices/{device}/terminal', { params: { path: { device } } });
    return 'The device is offline, or its agent does not run shells (exec is turned off in its configuration).';
  } catch (error) {
    return error instanceof ApiError ? error.message : 'fleetgate could not be reached.';
  }
}
