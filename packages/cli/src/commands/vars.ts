import { type Command, Option } from 'commander';
import type { EffectiveVariable, Items, Variable } from '../api.ts';
import { parseDeviceRef, parseRef } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';
import { readAll } from '../prompt.ts';

/** Secret values are write-only: the API answers null for them. */
const shownValue = (variable: Variable) => (variable.secret ? '(secret)' : variable.value);

const fleetVariableColumns: Column<Variable>[] = [
  { header: 'NAME', value: (variable) => variable.name },
  { header: 'VALUE', value: shownValue },
  { header: 'UPDATED', value: (variable) => variable.updatedAt },
];

const deviceVariableColumns: Column<EffectiveVariable>[] = [
  { header: 'NAME', value: (variable) => variable.name },
  { header: 'VALUE', value: shownValue },
  {
    header: 'FROM',
    value: (variable) => (variable.overridesFleet ? 'device (overrides fleet)' : variable.source),
  },
  { header: 'UPDATED', value: (variable) => variable.updatedAt },
];

interface TargetOptions {
  fleet?: string;
  device?: string;
}

/** Whose variables: a fleet's (all its devices) or one device's. */
interface Target {
  kind: 'fleet' | 'device';
  path: string;
  label: string;
}

function targetOf(options: TargetOptions): Target {
  if (options.fleet !== undefined) {
    return { kind: 'fleet', path: apiPath`/fleets/${options.fleet}`, label: `fleet ${options.fleet}` };
  }
  if (options.device !== undefined) {
    return { kind: 'device', path: apiPath`/devices/${options.device}`, label: `device ${options.device}` };
  }
  throw new CliError('whose variables? pass --fleet <fleet> or --device <device>');
}

/** `--fleet` and `--device`, one of which each `vars` command needs. */
function withTarget(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--fleet <fleet>',
        "the fleet's variables, id or name (every device inherits them)",
      ).argParser(parseRef),
    )
    .addOption(
      new Option('--device <device>', "one device's variables (name, uuid or id; they override the fleet's)")
        .argParser(parseDeviceRef)
        .conflicts('fleet'),
    );
}

/** `vars ls|set|rm`: environment variables of fleets and devices. */
export function registerVariableCommands(program: Command, io: CliIo): void {
  const vars = program.command('vars').description('environment variables of fleets and devices');

  withTarget(
    vars
      .command('ls')
      .description("list a fleet's variables, or a device's effective ones (own and fleet's)"),
  ).action(async (options: TargetOptions, command: Command) => {
    const ctx = new CommandContext(io, command);
    const target = targetOf(options);
    if (target.kind === 'fleet') {
      const answer = await ctx.api<Items<Variable>>('GET', `${target.path}/variables`);
      ctx.out.list(answer, fleetVariableColumns, 'variables');
    } else {
      const answer = await ctx.api<Items<EffectiveVariable>>('GET', `${target.path}/variables`);
      ctx.out.list(answer, deviceVariableColumns, 'variables');
    }
  });

  withTarget(
    vars
      .command('set')
      .description('set a variable')
      .argument('<name>', 'variable name: letters, digits and _, not starting with a digit')
      .argument('<value>', 'its value; - reads it from standard input (keeps secrets out of shell history)')
      .option('--secret', 'write-only: the value is never shown again'),
  ).action(
    async (name: string, value: string, options: TargetOptions & { secret?: boolean }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const target = targetOf(options);
      const text = value === '-' ? (await readAll(io.stdin)).replace(/\r?\n$/, '') : value;
      const variable = await ctx.api<Variable>('PUT', `${target.path}${apiPath`/variables/${name}`}`, {
        body: { value: text, secret: options.secret },
      });
      ctx.out.result(variable, () => `set ${name} on ${target.label}${variable.secret ? ' (secret)' : ''}\n`);
    },
  );

  withTarget(vars.command('rm').description('remove a variable').argument('<name>', 'variable name')).action(
    async (name: string, options: TargetOptions, command: Command) => {
      const ctx = new CommandContext(io, command);
      const target = targetOf(options);
      await ctx.api('DELETE', `${target.path}${apiPath`/variables/${name}`}`);
      ctx.out.done(`removed ${name} from ${target.label}`);
    },
  );
}
