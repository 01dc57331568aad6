import { type Command, Option } from 'commander';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import { formatTable } from '../output.ts';

/** The plan's settings, each with its configuration key (each also has its FLEETGATE_VPN_* variable). */
const planFlags = [
  {
    flag: '--base-subnet <cidr>',
    key: 'vpnBaseSubnet',
    help: 'subnet all instances share (default 10.240.0.0/12)',
  },
  {
    flag: '--instance-bitmask <bits>',
    key: 'vpnInstanceSubnetBitmask',
    help: "prefix length of each instance's slice (default 20)",
  },
  { flag: '--instances <n>', key: 'vpnInstances', help: 'OpenVPN instances (default one per CPU)' },
  {
    flag: '--gateway <address>',
    key: 'vpnGateway',
    help: "server end of every instance's link (default: each slice's first address)",
  },
  {
    flag: '--base-port <port>',
    key: 'vpnBasePort',
    help: 'instance n listens on 127.0.0.1 port base + n (default 10000)',
  },
] as const;

/** `fleetgate vpn plan`: the OpenVPN instances' subnets, addresses and ports, as `serve` would start them. */
export function registerVpnCommands(program: Command, io: CliIo): void {
  const vpn = program
    .command('vpn')
    .description('the OpenVPN backend for balenaOS devices (FLEETGATE_VPN=on)');
  const plan = vpn
    .command('plan')
    .description(
      "show each OpenVPN instance's subnet, gateway, peer, address pool, client limit and port, planned as " +
        'open-balena-vpn does from FLEETGATE_VPN_BASE_SUBNET, _INSTANCE_SUBNET_BITMASK, _INSTANCES, _GATEWAY and _BASE_PORT',
    );
  const options = planFlags.map(({ flag, key, help }) => ({ key, option: new Option(flag, help) }));
  for (const { option } of options) plan.addOption(option);
  plan.action(async (values: Record<string, string | undefined>, cmd: Command) => {
    const ctx = new CommandContext(io, cmd);
    const { loadConfig, planVpn, ConfigError } = await import('@fleetgate/server');
    const flags: Record<string, string> = {};
    for (const { key, option } of options) {
      const value = values[option.attributeName()];
      if (value !== undefined) flags[key] = value;
    }
    let plans: ReturnType<typeof planVpn>;
    try {
      const config = loadConfig(io.env, flags);
      plans = planVpn({
        baseSubnet: config.vpnBaseSubnet,
        instanceBitmask: config.vpnInstanceSubnetBitmask,
        instances: config.vpnInstances ?? (await import('node:os')).availableParallelism(),
        gateway: config.vpnGateway,
        basePort: config.vpnBasePort,
      });
    } catch (error) {
      if (error instanceof ConfigError || (error instanceof Error && error.name === 'VpnPlanError'))
        throw new CliError(error.message, { exitCode: 2, cause: error });
      throw error;
    }
    const total = plans.reduce((sum, p) => sum + p.maxClients, 0);
    ctx.out.result(
      { instances: plans, maxClients: total },
      ({ instances }) =>
        `${formatTable(instances, [
          { header: 'INSTANCE', value: (p) => p.id },
          { header: 'SUBNET', value: (p) => p.subnet },
          { header: 'GATEWAY', value: (p) => p.gateway },
          { header: 'PEER', value: (p) => p.peer },
          { header: 'POOL', value: (p) => `${p.poolStart} - ${p.poolEnd}` },
          { header: 'CLIENTS', value: (p) => p.maxClients },
          { header: 'PORT', value: (p) => p.port },
        ])}${instances.length} instance(s), ${total} devices at most\n`,
    );
  });
}
