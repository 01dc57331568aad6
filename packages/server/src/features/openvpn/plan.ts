/**
 * The OpenVPN instances' subnets and ports, planned exactly as open-balena-vpn does (seed 003):
 *
 * - the base subnet (`FLEETGATE_VPN_BASE_SUBNET`, balena's `VPN_BASE_SUBNET`) is split into slices of the
 *   instance prefix length (`FLEETGATE_VPN_INSTANCE_SUBNET_BITMASK`, `VPN_INSTANCE_SUBNET_BITMASK`), instance n
 *   (from 1) taking slice n - 1: 10.240.0.0/12 in /20 slices gives 10.240.0.0/20, 10.240.16.0/20, … up to
 *   10.255.240.0/20 for the 256th;
 * - the server end of each instance's point-to-point link is the gateway (`FLEETGATE_VPN_GATEWAY`,
 *   `BALENA_VPN_GATEWAY`) or else the slice's first usable address; the second usable address is its peer;
 * - the pool handed to devices runs from the third usable address to the last usable one (4,094 clients in a
 *   /20, which is also the instance's client limit);
 * - each base port is incremented by the instance id: instance n listens on `FLEETGATE_VPN_BASE_PORT` + n.
 *
 * Pure arithmetic over 32-bit addresses: no sockets, unit-tested.
 */

export interface VpnPlanOptions {
  /** The subnet all instances share, CIDR: `10.240.0.0/12`. */
  baseSubnet: string;
  /** Prefix length of one instance's slice: 20. */
  instanceBitmask: number;
  /** Instances to plan; more than the base subnet holds is an error. */
  instances: number;
  /** Server end of every instance's link; unset = each slice's first usable address. */
  gateway?: string | undefined;
  /** Instance n listens on basePort + n. */
  basePort: number;
}

/** One OpenVPN instance's share of the plan. */
export interface VpnInstancePlan {
  /** 1-indexed, as seed 003 counts. */
  id: number;
  /** Its slice, CIDR. */
  subnet: string;
  network: string;
  netmask: string;
  /** Server end of the point-to-point link. */
  gateway: string;
  /** Client end of the point-to-point link (the second usable address). */
  peer: string;
  poolStart: string;
  poolEnd: string;
  /** Devices it can hold at once: the pool's size. */
  maxClients: number;
  /** TCP port it listens on (on 127.0.0.1: devices reach it through fleetgate's public VPN port). */
  port: number;
}

export class VpnPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VpnPlanError';
  }
}

/** `a.b.c.d` as an unsigned 32-bit number; throws on anything else. */
export function ipv4ToNumber(address: string): number {
  const parts = address.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    throw new VpnPlanError(`"${address}" is not an IPv4 address`);
  }
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses `a.b.c.d/len` into its network number and prefix length; host bits must be zero. */
export function parseSubnet(cidr: string): { network: number; prefix: number } {
  const match = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  if (!match) throw new VpnPlanError(`"${cidr}" is not a subnet in CIDR notation (10.240.0.0/12)`);
  const network = ipv4ToNumber(match[1]!);
  const prefix = Number(match[2]);
  if (prefix < 1 || prefix > 30) throw new VpnPlanError(`${cidr}: the prefix length must be 1 to 30`);
  if (network % 2 ** (32 - prefix) !== 0) {
    throw new VpnPlanError(
      `${cidr}: the address has host bits set (did you mean ${numberToIpv4(network - (network % 2 ** (32 - prefix)))}/${prefix}?)`,
    );
  }
  return { network, prefix };
}

/** How many instances the base subnet holds at the instance prefix length. */
export function instancesAvailable(baseSubnet: string, instanceBitmask: number): number {
  const { prefix } = parseSubnet(baseSubnet);
  if (instanceBitmask < prefix) return 0;
  return 2 ** (instanceBitmask - prefix);
}

/** Plans `instances` OpenVPN instances; throws `VpnPlanError` saying what to change when they do not fit. */
export function planVpn(options: VpnPlanOptions): VpnInstancePlan[] {
  const { network: base, prefix } = parseSubnet(options.baseSubnet);
  const bits = options.instanceBitmask;
  if (bits < prefix) {
    throw new VpnPlanError(
      `the instance prefix /${bits} is larger than the base subnet ${options.baseSubnet}: ` +
        `set FLEETGATE_VPN_INSTANCE_SUBNET_BITMASK to ${prefix} or more`,
    );
  }
  if (bits > 29) {
    throw new VpnPlanError(
      `an instance slice of /${bits} has no room for a pool: use /29 or a shorter prefix`,
    );
  }
  const available = 2 ** (bits - prefix);
  if (options.instances > available) {
    throw new VpnPlanError(
      `${options.instances} instances do not fit in ${options.baseSubnet} split in /${bits} slices (${available} do): ` +
        'lower FLEETGATE_VPN_INSTANCES, shorten FLEETGATE_VPN_INSTANCE_SUBNET_BITMASK or widen FLEETGATE_VPN_BASE_SUBNET',
    );
  }
  if (options.basePort + options.instances > 65535) {
    throw new VpnPlanError(
      `ports ${options.basePort + 1}…${options.basePort + options.instances} do not exist: lower FLEETGATE_VPN_BASE_PORT`,
    );
  }
  const size = 2 ** (32 - bits);
  const gateway = options.gateway === undefined ? undefined : ipv4ToNumber(options.gateway);
  const plans: VpnInstancePlan[] = [];
  for (let id = 1; id <= options.instances; id++) {
    const network = base + (id - 1) * size;
    const broadcast = network + size - 1;
    plans.push({
      id,
      subnet: `${numberToIpv4(network)}/${bits}`,
      network: numberToIpv4(network),
      netmask: numberToIpv4(size === 2 ** 32 ? 0 : 2 ** 32 - size),
      gateway: numberToIpv4(gateway ?? network + 1),
      peer: numberToIpv4(network + 2),
      poolStart: numberToIpv4(network + 3),
      poolEnd: numberToIpv4(broadcast - 1),
      maxClients: broadcast - 1 - (network + 3) + 1,
      port: options.basePort + id,
    });
  }
  return plans;
}
