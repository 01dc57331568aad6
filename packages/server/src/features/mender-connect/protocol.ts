/**
 * mender-connect's wire protocol (the `ws` package of mendersoftware/go-lib-micro), as fleetgate speaks it on
 * `GET /api/devices/v1/deviceconnect/connect`. One file, top to bottom: the protocol numbers, the message shape,
 * the bodies each protocol carries, and the one check every incoming message passes before it is used.
 *
 * Each binary WebSocket message is ONE msgpack map `{hdr: {proto, typ, sid, props}, body}`:
 *
 *   proto   1 shell, 2 file transfer, 3 port forward, 4 mender client, 0xFFFF control
 *   typ     what the message is within its protocol (`new`, `shell`, `forward`, `ping`…)
 *   sid     the session it belongs to: the server chooses it; the device answers on it
 *   props   per-protocol properties (`status`, `connection_id`, `terminal_width`…)
 *   body    raw bytes: terminal data, forwarded bytes, or a nested msgpack map (`open`, `accept`, errors)
 *
 * Sessions of protos 2–4 begin with the control handshake `open{versions:[1]}` → `accept{version, protocols}`
 * (mender-connect session/session.go) and end with control `close`. The shell (proto 1) is older and needs none:
 * `new` (answered with `props.status` 1 ok / 2 error), `shell` data both ways, `resize`, `stop`, and a health
 * check `ping` every 60 s that the server answers with `pong`.
 *
 * Limits that shape the sender: the device reads at most 8,192 bytes per message (connectionmanager.go
 * `maxMessageSize`), so what fleetgate sends stays under `DEVICE_MAX_MESSAGE`; port forwarding allows one
 * unacknowledged `forward` per connection each way (session/portforward.go `mutexAck`).
 *
 * msgpack is written with msgpackr's plain `pack`/`unpack`: its record extension is not readable by Go.
 */
import { pack, unpack } from 'msgpackr';

/** The protocol version of the control handshake (go-lib-micro ws.ProtocolVersion). */
export const PROTOCOL_VERSION = 1;

export const Proto = {
  shell: 1,
  fileTransfer: 2,
  portForward: 3,
  menderClient: 4,
  control: 0xffff,
} as const;
export type ProtoValue = (typeof Proto)[keyof typeof Proto];

/** Control message types (proto 0xFFFF). */
export const ControlType = {
  ping: 'ping',
  pong: 'pong',
  open: 'open',
  accept: 'accept',
  close: 'close',
  error: 'error',
} as const;

/** Shell message types (proto 1) and the `props.status` values of its answers. */
export const ShellType = {
  new: 'new',
  shell: 'shell',
  resize: 'resize',
  stop: 'stop',
  ping: 'ping',
  pong: 'pong',
} as const;
export const ShellStatus = { normal: 1, error: 2, control: 3 } as const;

/** Port-forward message types (proto 3); each carries `props.connection_id`. */
export const PortForwardType = {
  new: 'new',
  stop: 'stop',
  forward: 'forward',
  ack: 'ack',
  error: 'error',
} as const;

/** The largest message the device reads (mender-connect connectionmanager.go `maxMessageSize`). */
export const DEVICE_MAX_MESSAGE = 8192;
/**
 * The most body bytes fleetgate puts in one message to the device: the header (`proto`, `typ`, a 32-character
 * `sid`, a `connection_id` or a terminal's properties) takes well under 256 bytes of the 8,192.
 */
export const MAX_BODY_TO_DEVICE = DEVICE_MAX_MESSAGE - 256;
/**
 * The largest message fleetgate reads from a device, in bytes. mender-connect sends at most 4 KiB of payload
 * per message (port forward and file chunks; shell output in 255-byte pieces): 64 KiB leaves room and bounds
 * what one message may make the server hold.
 */
export const MAX_MESSAGE_FROM_DEVICE = 64 * 1024;

/** Property values as the Go side sends them: numbers, strings, booleans, nil, or nested lists/maps of them. */
export type PropValue = unknown;

export interface ProtoHeader {
  proto: number;
  typ: string;
  sid: string;
  props: Record<string, PropValue>;
}

export interface ProtoMessage {
  hdr: ProtoHeader;
  body: Buffer;
}

/** A device broke the protocol: the connection closes with `CloseReason.protocol` and this message. */
export class MenderProtocolError extends Error {
  override name = 'MenderProtocolError';
}

/** Longest `typ` and `sid` accepted, in characters. */
const MAX_TYPE = 64;
const MAX_SID = 128;
/** Most properties one header may carry. */
const MAX_PROPS = 32;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/**
 * Decodes and checks one message from a device. Throws `MenderProtocolError` for anything that is not one
 * msgpack map of the shape above (truncated data, trailing bytes, a wrong type anywhere, too large).
 */
export function decodeMessage(data: Uint8Array): ProtoMessage {
  if (data.length > MAX_MESSAGE_FROM_DEVICE)
    throw new MenderProtocolError(`a message of ${data.length} bytes: at most ${MAX_MESSAGE_FROM_DEVICE}`);
  let value: unknown;
  try {
    value = unpack(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
  } catch (err) {
    throw new MenderProtocolError(`not msgpack: ${(err as Error).message}`.slice(0, 200));
  }
  if (!isPlainObject(value)) throw new MenderProtocolError('a message is a msgpack map');
  const { hdr, body } = value;
  if (!isPlainObject(hdr)) throw new MenderProtocolError('a message has a `hdr` map');
  const { proto, typ, sid, props } = hdr;
  if (typeof proto !== 'number' || !Number.isInteger(proto) || proto < 0 || proto > 0xffff)
    throw new MenderProtocolError('`hdr.proto` is an integer from 0 to 65535');
  if (typ !== undefined && typ !== null && (typeof typ !== 'string' || typ.length > MAX_TYPE))
    throw new MenderProtocolError(`\`hdr.typ\` is a string of at most ${MAX_TYPE} characters`);
  if (sid !== undefined && sid !== null && (typeof sid !== 'string' || sid.length > MAX_SID))
    throw new MenderProtocolError(`\`hdr.sid\` is a string of at most ${MAX_SID} characters`);
  if (props !== undefined && props !== null) {
    if (!isPlainObject(props)) throw new MenderProtocolError('`hdr.props` is a map');
    if (Object.keys(props).length > MAX_PROPS)
      throw new MenderProtocolError(`\`hdr.props\` has at most ${MAX_PROPS} entries`);
  }
  if (body !== undefined && body !== null && !Buffer.isBuffer(body))
    throw new MenderProtocolError('`body` is binary');
  return {
    hdr: {
      proto,
      typ: (typ as string | undefined) ?? '',
      sid: (sid as string | undefined) ?? '',
      props: (props as Record<string, PropValue> | undefined) ?? {},
    },
    body: (body as Buffer | undefined) ?? Buffer.alloc(0),
  };
}

/** Encodes a message for the device; empty `typ`, `sid`, `props` and `body` are left out, as Go's `omitempty` does. */
export function encodeMessage(message: {
  proto: number;
  typ?: string;
  sid?: string;
  props?: Record<string, PropValue>;
  body?: Uint8Array;
}): Buffer {
  const hdr: Record<string, unknown> = { proto: message.proto };
  if (message.typ) hdr.typ = message.typ;
  if (message.sid) hdr.sid = message.sid;
  if (message.props && Object.keys(message.props).length) hdr.props = message.props;
  const envelope: Record<string, unknown> = { hdr };
  if (message.body?.length) envelope.body = Buffer.from(message.body);
  return pack(envelope);
}

/** A nested msgpack body (`open`, `accept`, `new` of port forwarding). */
export function encodeBody(value: Record<string, unknown>): Buffer {
  return pack(value);
}

/** Decodes a nested msgpack body that must be a map; `MenderProtocolError` otherwise. */
export function decodeBody(body: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = unpack(Buffer.from(body));
  } catch (err) {
    throw new MenderProtocolError(`a body that is not msgpack: ${(err as Error).message}`.slice(0, 200));
  }
  if (!isPlainObject(value)) throw new MenderProtocolError('a body that is not a msgpack map');
  return value;
}

/** The `accept` body: the version agreed and the protocols the device serves. */
export function acceptOf(body: Uint8Array): { version: number; protocols: number[] } {
  const accept = decodeBody(body);
  const { version, protocols } = accept;
  if (
    typeof version !== 'number' ||
    !Array.isArray(protocols) ||
    protocols.some((p) => typeof p !== 'number')
  )
    throw new MenderProtocolError('an `accept` body is {version, protocols}');
  return { version, protocols: protocols as number[] };
}

/** The message of an `error` body (control `{err, close}`, port forward `{err, msgtype}`), for people to read. */
export function errorTextOf(body: Uint8Array): string {
  try {
    const error = decodeBody(body);
    return typeof error.err === 'string' ? error.err.slice(0, 256) : 'the device reported an error';
  } catch {
    return 'the device reported an error';
  }
}

/** WebSocket close codes and reasons fleetgate closes a device's connection with. */
export const CloseReason = {
  protocol: { code: 1002, reason: 'protocol error' },
  tooLarge: { code: 1009, reason: 'message too large' },
  noAnswer: { code: 4000, reason: 'no answer to pings' },
  decommissioned: { code: 4001, reason: 'the device was decommissioned' },
  revoked: { code: 4002, reason: 'the device credential was revoked' },
  superseded: { code: 4003, reason: 'a newer connection of this device replaced this one' },
  shutdown: { code: 1001, reason: 'the server is shutting down' },
} as const;
