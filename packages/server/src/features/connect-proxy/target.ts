import { domainToUnicode } from 'node:url';

/**
 * What a proxy request names: `<device>.<suffix>:<port>` in a CONNECT line, or the host of an absolute-form
 * request's URL (`GET http://kiosk-17.devices:8080/path`). `<device>` is what `resolveDevice`
 * (features/remote-access/device-names.ts) takes after authentication: a name, a uuid or a uuid prefix of at least 7
 * characters. Without the suffix only a full uuid names a device: a proxy also sees host names meant for
 * elsewhere (a browser or a script with the proxy set for everything), and `intranet:443` or `cafe123:443`
 * must not quietly reach a device that happens to be named so.
 *
 * Host names are lower-case ASCII letters, digits, `-`, `_` and dots: a name with other letters arrives as
 * punycode (curl and URL parsers encode `küche` as `xn--kche-0ra`) and is decoded here; a name with spaces or
 * other characters that cannot appear in a host name is reached by its uuid or a uuid prefix.
 */

export interface ProxyTarget {
  /** The device as the request names it, the suffix removed: a name, a uuid or a uuid prefix. */
  device: string;
  /** The host as the request wrote it, lower-cased: for messages. */
  host: string;
  port: number;
}

const uuidPattern = /^[0-9a-f]{32}$/;

/** What a host name says about the device, or undefined when it names none (see the top of this file). */
export function deviceOfHost(host: string, suffix: string): string | undefined {
  let name = host.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  const ending = `.${suffix.toLowerCase()}`;
  if (name.endsWith(ending)) {
    const label = name.slice(0, -ending.length);
    if (!label) return undefined;
    // Only punycode is decoded: domainToUnicode reads a label of digits alone (a uuid prefix such as `95536080`)
    // or `0x…` as an IPv4 address. It answers '' for punycode that does not decode: such a label is looked up as
    // written.
    return /(^|\.)xn--/.test(label) ? domainToUnicode(label) || label : label;
  }
  // openBalena's name for a device behind its VPN, `<uuid>.balena`: a full uuid only.
  if (name.endsWith('.balena') && uuidPattern.test(name.slice(0, -'.balena'.length)))
    return name.slice(0, -7);
  return uuidPattern.test(name) ? name : undefined;
}

function portOf(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Why a request names no device, for the 400 answer. */
export class TargetError extends Error {}

const usage = (suffix: string) =>
  `name a device as <name>.${suffix}:<port>, <uuid>.${suffix}:<port> or <uuid prefix>.${suffix}:<port>`;

/** The target of `CONNECT <authority>`: `host:port`, the port required. */
export function parseConnectAuthority(authority: string, suffix: string): ProxyTarget {
  const match = /^([A-Za-z0-9._-]{1,253}):([0-9]{1,5})$/.exec(authority);
  if (!match) throw new TargetError(`the CONNECT target must be host:port: ${usage(suffix)}`);
  const host = match[1]!.toLowerCase();
  const device = deviceOfHost(host, suffix);
  if (!device) throw new TargetError(`fleetgate's proxy reaches devices only: ${usage(suffix)}`);
  const port = portOf(match[2]!);
  if (port === undefined) throw new TargetError('the port must be a number from 1 to 65535');
  return { device, host, port };
}

/** The target and origin-form path of an absolute-form request URL (`http://` only; HTTPS goes by CONNECT). */
export function parseAbsoluteUrl(url: string, suffix: string): ProxyTarget & { path: string } {
  if (!/^http:\/\//i.test(url)) {
    throw new TargetError(
      /^https:\/\//i.test(url)
        ? 'HTTPS goes through CONNECT: let the client tunnel (curl does so for https:// URLs)'
        : `this is fleetgate's proxy: send absolute-form requests (GET http://<name>.${suffix}/path) or CONNECT`,
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
  // URL parsing lower-cased the host and turned other letters into punycode.
  const device = deviceOfHost(parsed.hostname, suffix);
  if (!device) throw new TargetError(`fleetgate's proxy reaches devices only: ${usage(suffix)}`);
  const port = parsed.port === '' ? 80 : portOf(parsed.port);
  if (port === undefined) throw new TargetError('the port must be a number from 1 to 65535');
  return { device, host: parsed.hostname, port, path: `${parsed.pathname}${parsed.search}` };
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
