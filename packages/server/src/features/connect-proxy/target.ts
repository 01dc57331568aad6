/**
 * What a proxy request names: `<uuid>.<suffix>:<port>` (or a bare `<uuid>`) in a CONNECT line, or in the
 * URL of an absolute-form request (`GET http://<uuid>.devices:8080/path`).
 */

export interface ProxyTarget {
  /** The device's uuid, lower-case. */
  uuid: string;
  port: number;
}

const uuidPattern = /^[0-9a-f]{32}$/;

/** The device uuid a host name names, or undefined when it names no device. */
export function deviceUuidOfHost(host: string, suffix: string): string | undefined {
  let name = host.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.endsWith(`.${suffix}`)) name = name.slice(0, -(suffix.length + 1));
  return uuidPattern.test(name) ? name : undefined;
}

function portOf(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Why a request names no device, for the 400 answer. */
export class TargetError extends Error {}

const usage = (suffix: string) => `name a device as <uuid>.${suffix}:<port>`;

/** The target of `CONNECT <authority>`: `host:port`, the port required. */
export function parseConnectAuthority(authority: string, suffix: string): ProxyTarget {
  const match = /^([A-Za-z0-9.-]{1,253}):([0-9]{1,5})$/.exec(authority);
  if (!match) throw new TargetError(`the CONNECT target must be host:port: ${usage(suffix)}`);
  const uuid = deviceUuidOfHost(match[1]!, suffix);
  if (!uuid) throw new TargetError(`fleetgate's proxy reaches devices only: ${usage(suffix)}`);
  const port = portOf(match[2]!);
  if (port === undefined) throw new TargetError('the port must be a number from 1 to 65535');
  return { uuid, port };
}

/** The target and origin-form path of an absolute-form request URL (`http://` only; HTTPS goes by CONNECT). */
export function parseAbsoluteUrl(url: string, suffix: string): ProxyTarget & { path: string } {
  if (!/^http:\/\//i.test(url)) {
    throw new TargetError(
      /^https:\/\//i.test(url)
        ? 'HTTPS goes through CONNECT: let the client tunnel (curl does so for https:// URLs)'
        : `this is fleetgate's proxy: send absolute-form requests (GET http://<uuid>.${suffix}/path) or CONNECT`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TargetError(`the request URL cannot be parsed: ${usage(suffix)}`);
  }
  if (parsed.username || parsed.password) {
    throw new TargetError('credentials go in Proxy-Authorization, not in the URL');
  }
  const uuid = deviceUuidOfHost(parsed.hostname, suffix);
  if (!uuid) throw new TargetError(`fleetgate's proxy reaches devices only: ${usage(suffix)}`);
  const port = parsed.port === '' ? 80 : portOf(parsed.port);
  if (port === undefined) throw new TargetError('the port must be a number from 1 to 65535');
  return { uuid, port, path: `${parsed.pathname}${parsed.search}` };
}

/** `Proxy-Authorization: Basic base64(login:key)` → login and key; undefined when absent or not Basic. */
export function proxyCredentialsOf(header: string | undefined): { login: string; key: string } | undefined {
  if (!header) return undefined;
  const match = /^Basic\s+([A-Za-z0-9+/=]{1,2048})\s*$/i.exec(header);
  if (!match) return undefined;
  const text = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { login: text.slice(0, colon), key: text.slice(colon + 1) };
}
