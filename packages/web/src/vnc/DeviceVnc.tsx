import {
  Alert,
  Box,
  Button,
  Group,
  NumberInput,
  PasswordInput,
  Stack,
  Switch,
  Text,
  Textarea,
  TextInput,
} from '@mantine/core';
import RFB from '@novnc/novnc';
import { useQuery } from '@tanstack/react-query';
import { type FormEvent, type RefObject, useEffect, useRef, useState } from 'react';
import { ApiError, api, type Device, data } from '../api/client.ts';
import { streamEndTitles } from '../api/stream-end.ts';

/** The port a VNC server listens on by default (display :0). */
const DEFAULT_VNC_PORT = 5900;

/** Close codes the server gives (features/vnc/protocol.ts), as headings. */
const endTitles: Record<number, string> = {
  ...streamEndTitles,
  1000: 'The VNC server closed the connection',
  1003: 'The viewer sent something the server refused',
  1009: 'The viewer sent something the server refused',
};

/** How a VNC session ended, for the person. */
interface VncEnd {
  /** The WebSocket close code (1000 the VNC server hung up, 4000 terminated, 4001 access revoked, 4002 offline…). */
  code: number;
  reason: string;
  /** The WebSocket never opened: refused before the handshake, or fleetgate could not be reached. */
  refused: boolean;
  /** The VNC server refused the credentials (or the security handshake failed), with its reason. */
  securityFailure?: string;
}

type State =
  | { kind: 'connecting' }
  | { kind: 'credentials'; types: string[] }
  | { kind: 'open'; desktop: string | undefined }
  | { kind: 'ended'; end: VncEnd; explanation?: string }
  | { kind: 'closed' };

const accessOf = async (device: string, port: number) =>
  data(await api.GET('/api/v1/devices/{device}/ports/{port}/vnc', { params: { path: { device, port } } }));

/**
 * A VNC server on the device, in the browser: noVNC over fleetgate's WebSocket to the device's port (5900 unless
 * another is given), with scale-to-fit, view-only, the clipboard both ways, a password prompt when the server asks
 * for one, and the session's end and its reason shown under the screen.
 */
export function DeviceVnc({ device }: { device: Device }) {
  const [portText, setPortText] = useState<string | number>(DEFAULT_VNC_PORT);
  const port = Number(portText);
  const portValid = Number.isInteger(port) && port >= 1 && port <= 65535;
  /** The session shown: a new key is a new connection, with nothing of the last one's screen or state. */
  const [session, setSession] = useState<{ key: number; port: number } | undefined>(undefined);
  const [scale, setScale] = useState(true);
  const [viewOnly, setViewOnly] = useState(false);
  const [clipboard, setClipboard] = useState('');
  const rfb = useRef<RFB | undefined>(undefined);
  const [open, setOpen] = useState(false);
  const access = useQuery({
    queryKey: ['device', device.uuid, 'vnc', port],
    queryFn: () => accessOf(device.uuid, port),
    enabled: portValid,
  });
  const connect = (event: FormEvent) => {
    event.preventDefault();
    if (portValid) setSession((last) => ({ key: (last?.key ?? 0) + 1, port }));
  };
  const notAllowed = access.data && !access.data.allowed;

  return (
    <Stack gap="sm">
      <form onSubmit={connect}>
        <Group align="flex-end" gap="sm">
          <NumberInput
            label="VNC port"
            value={portText}
            onChange={setPortText}
            min={1}
            max={65535}
            allowDecimal={false}
            allowNegative={false}
            w={120}
            error={portValid ? undefined : 'a port from 1 to 65535'}
          />
          <Button type="submit" disabled={!portValid || notAllowed}>
            Connect
          </Button>
          <Switch
            label="Scale to fit"
            checked={scale}
            onChange={(event) => setScale(event.currentTarget.checked)}
            mb={8}
          />
          <Switch
            label="View only"
            checked={viewOnly}
            onChange={(event) => setViewOnly(event.currentTarget.checked)}
            mb={8}
          />
        </Group>
      </form>
      {notAllowed && (
        <Alert color="blue" title={`Port ${port} is not on this device's allow-list`}>
          <Text size="sm">
            People may reach ports {access.data.ports.join(', ') || '(none)'} on this device. An administrator
            adds {port} in the Ports tab (and the device's agent must allow it too, in its{' '}
            <code>allowedPorts</code>
            ).
          </Text>
        </Alert>
      )}
      {access.error && (
        <Alert color="red" title="VNC cannot be opened here">
          <Text size="sm">{access.error.message}</Text>
        </Alert>
      )}
      {session ? (
        <VncSession
          key={session.key}
          device={device}
          port={session.port}
          scale={scale}
          viewOnly={viewOnly}
          rfb={rfb}
          onOpen={setOpen}
          onClipboard={setClipboard}
          reconnect={() => setSession((last) => last && { ...last, key: last.key + 1 })}
        />
      ) : (
        <Text size="sm" c="dimmed">
          Connect to the VNC server listening on the device's port (on its 127.0.0.1, where the agent
          connects). The session is audited and listed in Sessions, where an administrator can end it.
        </Text>
      )}
      <Textarea
        label="Clipboard"
        description="What the device copies shows here; edit it and send it to the device's clipboard."
        autosize
        minRows={2}
        maxRows={6}
        value={clipboard}
        onChange={(event) => setClipboard(event.currentTarget.value)}
      />
      <Group>
        <Button
          size="xs"
          variant="default"
          disabled={!open}
          onClick={() => rfb.current?.clipboardPasteFrom(clipboard)}
        >
          Send to the device's clipboard
        </Button>
      </Group>
    </Stack>
  );
}

interface SessionProps {
  device: Device;
  port: number;
  scale: boolean;
  viewOnly: boolean;
  /** The open connection, for the clipboard's "send". */
  rfb: RefObject<RFB | undefined>;
  onOpen(open: boolean): void;
  onClipboard(text: string): void;
  reconnect(): void;
}

function VncSession({ device, port, scale, viewOnly, rfb, onOpen, onClipboard, reconnect }: SessionProps) {
  const screen = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>({ kind: 'connecting' });
  const [credentials, setCredentials] = useState({ username: '', password: '' });
  /** Closes the session from this side (set while one is open). */
  const disconnect = useRef<(() => void) | undefined>(undefined);
  // The latest settings, for the connection's first frame (the effects below follow later changes).
  const settings = useRef({ scale, viewOnly });
  settings.current = { scale, viewOnly };

  useEffect(() => {
    const element = screen.current;
    if (!element) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(
      `${scheme}//${location.host}/api/v1/devices/${encodeURIComponent(device.uuid)}/ports/${port}/vnc`,
    );
    let opened = false;
    let closedWith: { code: number; reason: string } | undefined;
    let securityFailure: string | undefined;
    let leaving = false;
    let disconnected = false;
    // Before noVNC's own listeners: the close code and reason are known when it reports the disconnect.
    ws.addEventListener('open', () => {
      opened = true;
    });
    ws.addEventListener('close', (close) => {
      closedWith = { code: close.code, reason: close.reason };
    });
    const connection = new RFB(element, ws, { shared: true });
    connection.background = '#101113';
    connection.scaleViewport = settings.current.scale;
    connection.viewOnly = settings.current.viewOnly;
    rfb.current = connection;
    connection.addEventListener('connect', () => {
      setState({ kind: 'open', desktop: undefined });
      onOpen(true);
      connection.focus();
    });
    connection.addEventListener('desktopname', (event) =>
      setState((last) => (last.kind === 'open' ? { kind: 'open', desktop: event.detail.name } : last)),
    );
    connection.addEventListener('credentialsrequired', (event) =>
      setState({ kind: 'credentials', types: event.detail.types }),
    );
    connection.addEventListener('securityfailure', (event) => {
      securityFailure = event.detail.reason || `security failure (status ${event.detail.status})`;
    });
    connection.addEventListener('clipboard', (event) => onClipboard(event.detail.text));
    connection.addEventListener('disconnect', () => {
      rfb.current = undefined;
      disconnect.current = undefined;
      onOpen(false);
      if (leaving) return;
      if (disconnected) {
        setState({ kind: 'closed' });
        return;
      }
      const end: VncEnd = {
        code: closedWith?.code ?? 1006,
        reason:
          closedWith?.reason ||
          (opened ? 'the connection to fleetgate was lost' : 'the VNC connection could not be opened'),
        refused: !opened,
        ...(securityFailure ? { securityFailure } : {}),
      };
      setState({ kind: 'ended', end });
      if (end.refused)
        void explainRefusal(device.uuid, port).then((explanation) =>
          setState({ kind: 'ended', end, explanation }),
        );
    });
    disconnect.current = () => {
      disconnected = true;
      connection.disconnect();
    };
    return () => {
      leaving = true;
      onOpen(false);
      if (rfb.current === connection) rfb.current = undefined;
      connection.disconnect();
    };
  }, [device.uuid, port, rfb, onOpen, onClipboard]);

  useEffect(() => {
    if (rfb.current) rfb.current.scaleViewport = scale;
  }, [scale, rfb]);
  useEffect(() => {
    if (rfb.current) rfb.current.viewOnly = viewOnly;
  }, [viewOnly, rfb]);

  const sendCredentials = (event: FormEvent) => {
    event.preventDefault();
    if (state.kind !== 'credentials') return;
    rfb.current?.sendCredentials(
      state.types.includes('username') ? credentials : { password: credentials.password },
    );
    setCredentials({ username: '', password: '' });
    setState({ kind: 'connecting' });
  };

  return (
    <Box>
      <Group justify="space-between" mb="xs">
        <Text size="sm" aria-live="polite" data-vnc-state={state.kind}>
          {state.kind === 'connecting' && `Connecting to port ${port}…`}
          {state.kind === 'credentials' && 'The VNC server asks for a password'}
          {state.kind === 'open' &&
            `Connected to ${device.name}, port ${port}${state.desktop ? ` (${state.desktop})` : ''}`}
          {state.kind === 'ended' && 'Session ended'}
          {state.kind === 'closed' && 'Disconnected'}
        </Text>
        {state.kind === 'ended' || state.kind === 'closed' ? (
          <Button size="xs" onClick={reconnect}>
            Reconnect
          </Button>
        ) : (
          <Button size="xs" variant="default" onClick={() => disconnect.current?.()}>
            Disconnect
          </Button>
        )}
      </Group>
      {state.kind === 'credentials' && (
        <form onSubmit={sendCredentials}>
          <Group align="flex-end" mb="xs">
            {state.types.includes('username') && (
              <TextInput
                label="VNC user name"
                value={credentials.username}
                onChange={(event) => setCredentials({ ...credentials, username: event.currentTarget.value })}
              />
            )}
            <PasswordInput
              label="VNC password"
              autoFocus
              value={credentials.password}
              onChange={(event) => setCredentials({ ...credentials, password: event.currentTarget.value })}
            />
            <Button type="submit">Send</Button>
          </Group>
        </form>
      )}
      <Box
        ref={screen}
        data-testid="vnc-screen"
        style={{ height: '60vh', minHeight: 240, background: '#101113', borderRadius: 4, overflow: 'hidden' }}
      />
      {state.kind === 'ended' && (
        <Alert
          mt="sm"
          role="status"
          color={state.end.code === 1000 && !state.end.securityFailure ? 'gray' : 'red'}
          title={
            state.end.securityFailure
              ? 'The VNC server refused the password'
              : state.end.refused
                ? 'VNC could not be opened'
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

function describeEnd(end: VncEnd): string {
  if (end.securityFailure)
    return `It said: ${end.securityFailure}${/[.!?]$/.test(end.securityFailure) ? '' : '.'}`;
  // The explanation is on its way (see explainRefusal).
  if (end.refused) return 'Finding out why…';
  return `${end.reason.charAt(0).toUpperCase()}${end.reason.slice(1)}.`;
}

/**
 * A browser is not told why a WebSocket handshake was refused: the same URL without the upgrade says whether the
 * person may open VNC on that port; if they may, the device is offline or nothing listens on the port.
 */
async function explainRefusal(device: string, port: number): Promise<string> {
  try {
    const access = await accessOf(device, port);
    if (!access.allowed)
      return `Port ${port} is not on the device's allow-list (${access.ports.join(', ')}).`;
    return `The device is offline, or nothing on it answers on port ${port} (is its VNC server running, and does its agent allow the port?).`;
  } catch (error) {
    return error instanceof ApiError ? error.message : 'fleetgate could not be reached.';
  }
}
