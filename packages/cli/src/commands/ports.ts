import { type Argument, type Command, InvalidArgumentError, Option } from 'commander';
import type { AllowedPorts } from '../api.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';

const sourceText: Record<AllowedPorts['source'], string> = {
  device: "the device's own list",
  fleet: "its fleet's list",
  default: 'the default',
};

/** Commander parser for a TCP port: 1-65535. */
function parsePort(text: string, previous: number[] | undefined): number[] {
  if (!/^[1-9]\d{0,4}$/.test(text.trim()) || Number(text) > 65535) {
    throw new InvalidArgumentError(`"${text}" is not a port (1-65535)`);
  }
  return [...(previous ?? []), Number(text)];
}

/**
 * `<group> ports <owner> [ports...]` for devices and fleets: shows the port allow-list, or sets it (the ports
 * given, `--none` for no port at all, `--inherit` to go back to the fleet's list or the default).
 */
export function registerPortsCommand(
  group: Command,
  io: CliIo,
  owner: {
    noun: 'device' | 'fleet';
    argument: () => Argument;
    /** The owner's API path, e.g. `/devices/kiosk-17`. */
    path(ref: string): string;
    /** What `--inherit` goes back to. */
    inherits: string;
  },
): void {
  group
    .command('ports')
    .description(`show or set the ports people may reach on a ${owner.noun}'s devices (tunnel, CONNECT, SSH)`)
    .addArgument(owner.argument())
    .argument('[ports...]', 'the new list: TCP ports 1-65535 (omit to show the list)', parsePort)
    .addOption(new Option('--none', 'no port at all: nothing can be reached').conflicts('inherit'))
    .option('--inherit', `drop the ${owner.noun}'s own list: ${owner.inherits} applies`)
    .addHelpText(
      'after',
      `\nExamples:\n  fleetgate ${group.name()} ports kiosk-17 22 8080\n  fleetgate ${group.name()} ports kiosk-17 --inherit`,
    )
    .action(
      async (
        ref: string,
        ports: number[] | undefined,
        options: { none?: boolean; inherit?: boolean },
        command: Command,
      ) => {
        const ctx = new CommandContext(io, command);
        const path = `${owner.path(ref)}/allowed-ports`;
        const given = ports?.length ? ports : undefined;
        if (given && (options.none || options.inherit)) {
          throw new CliError('give ports, --none or --inherit, not several');
        }
        const newList = options.inherit ? null : options.none ? [] : given;
        const answer =
          newList === undefined
            ? await ctx.api<AllowedPorts>('GET', path)
            : await ctx.api<AllowedPorts>('PUT', path, {
                body: { ports: newList && [...new Set(newList)].sort((a, b) => a - b) },
              });
        ctx.out.result(answer, ({ ports: list, source }) => {
          const shown = list.length ? list.join(', ') : 'none';
          return `${owner.noun} ${ref}: ports ${shown} (${sourceText[source]})\n`;
        });
      },
    );
}
