/**
 * Device web origins: each (device, port, scheme) has a host of its own under the device web suffix,
 * `<port>-<uuid>.<suffix>` (HTTP on the device) or `<port>s-<uuid>.<suffix>` (HTTPS on the device), so one
 * device page can never read another's, nor fleetgate's cookies or API.
 */

/** What a device origin's host names. */
export interface DeviceOrigin {
  /** The device's uuid (32 lower-case hex). */
  uuid: string;
  port: number;
  /** The device serves HTTPS on the port. */
  tls: boolean;
}

/** The first label of a device origin: `8080-<uuid>` or `8443s-<uuid>`. */
const LABEL = /^(\d{1,5})(s?)-([0-9a-f]{32})$/;
/** What a host under the suffix must start with to be a device origin's (the rest is checked by `parseHost`). */
const CLAIMED = /^\d{1,5}s?-/;

/** `host[:port]` without its port (IPv6 literals are never device origins). */
function hostname(host: string): string {
  const colon = host.lastIndexOf(':');
  return colon > 0 && !host.startsWith('[') ? host.slice(0, colon) : host;
}

export class DeviceOrigins {
  private readonly ending: string;

  /** @param suffix the device web suffix (`FLEETGATE_DEVICE_WEB_SUFFIX`), e.g. `localhost`. */
  constructor(readonly suffix: string) {
    this.ending = `.${suffix}`;
  }

  /**
   * Whether `host` (lower-case, maybe with a port) is one of ours: one label under the suffix that starts like a
   * device origin's. Such a host is never fleetgate's API or UI, even when the rest of it is malformed.
   */
  claims(host: string): boolean {
    const name = hostname(host);
    if (!name.endsWith(this.ending)) return false;
    const label = name.slice(0, -this.ending.length);
    return !label.includes('.') && CLAIMED.test(label);
  }

  /** The device origin a claimed host names, or undefined when it is malformed (port out of range, not a uuid). */
  parse(host: string): DeviceOrigin | undefined {
    const name = hostname(host.toLowerCase());
    if (!name.endsWith(this.ending)) return undefined;
    const match = LABEL.exec(name.slice(0, -this.ending.length));
    if (!match) return undefined;
    const port = Number(match[1]);
    if (!(port >= 1 && port <= 65535) || match[1]!.startsWith('0')) return undefined;
    return { port, tls: match[2] === 's', uuid: match[3]! };
  }

  /** The host name of a device origin (without the listener's port). */
  hostOf(origin: DeviceOrigin): string {
    return `${origin.port}${origin.tls ? 's' : ''}-${origin.uuid}${this.ending}`;
  }
}
