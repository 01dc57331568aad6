import { Argument, type Command, type Option } from 'commander';
import type { Device, Fleet, Page } from '../api.ts';
import { type CliIo, CommandContext } from '../context.ts';

/** What an argument names, and so which names `__complete` offers for it. */
export const nameKinds = ['devices', 'fleets'] as const;
export type NameKind = (typeof nameKinds)[number];

const nameKindOf = new WeakMap<Argument, NameKind>();

/**
 * An argument that shell completion fills with the names of `kind` from the API:
 * `command.addArgument(namedArgument('<device>', 'device uuid, id or name', 'devices'))`. Mark only arguments
 * whose command takes a name.
 */
export function namedArgument(name: string, description: string, kind: NameKind): Argument {
  const argument = new Argument(name, description);
  nameKindOf.set(argument, kind);
  return argument;
}

/**
 * How long `__complete` waits for the API, in milliseconds: the shell waits for it on every Tab, so a slow or
 * unreachable server must cost a blink, not the API client's 30 s.
 */
const COMPLETE_TIMEOUT_MS = 1500;
/** Names offered per Tab: the API's largest page (beyond that, the person types a few more letters). */
const COMPLETE_LIMIT = 500;

/** `completion bash|zsh` and the hidden `__complete devices|fleets` its scripts call. */
export function registerCompletionCommands(program: Command, io: CliIo): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(fleetgate completion bash)')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh']))
    .addHelpText(
      'after',
      '\nbash: add `source <(fleetgate completion bash)` to ~/.bashrc\n' +
        'zsh:  add `source <(fleetgate completion zsh)` to ~/.zshrc (after compinit)\n' +
        'Device names are completed from the server you are signed in to.',
    )
    .action((shell: 'bash' | 'zsh') => {
      io.stdout.write(shell === 'bash' ? bashScript(program) : zshScript(program));
    });

  program
    .command('__complete', { hidden: true })
    .description('print the names of devices or fleets, one a line, for shell completion')
    .addArgument(new Argument('<kind>').choices(nameKinds))
    .action(async (kind: NameKind, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      const { server, token, ca } = await ctx.connection();
      // Not signed in: nothing to offer, and no message, which the shell would print over the command line.
      if (!server || !token) return;
      const client = ctx.clientFor(server, token, { timeoutMs: COMPLETE_TIMEOUT_MS, ca });
      try {
        const path = kind === 'devices' ? '/devices' : '/fleets';
        const answer = await client.request<Page<Device | Fleet>>('GET', path, {
          query: { limit: COMPLETE_LIMIT, sort: 'name' },
        });
        for (const item of answer.items) io.stdout.write(`${item.name}\n`);
      } catch {
        // Same as not signed in: a completion never fails the command line being typed.
      }
    });
}

/** One command of the tree as the completion scripts need it. */
interface CommandSpec {
  /** The words that lead to it: `devices rm`; empty for `fleetgate` itself. */
  path: string;
  subcommands: string[];
  /** Every flag it takes, the program's global ones included. */
  flags: string[];
  /** The flags of those that take a value (the next word is that value). */
  valuedFlags: string[];
  /** What its positional arguments name, by position (undefined: nothing to complete). */
  argumentKinds: (NameKind | undefined)[];
}

/** Walks commander's own tree (visible commands and options only), so the scripts never fall behind it. */
export function commandSpecs(program: Command): CommandSpec[] {
  // `--version` is the program's alone; `--server`, `--token` and `--json` are taken after any subcommand.
  const globalOptions = (program.options as Option[]).filter((option) => option.long !== '--version');
  const specs: CommandSpec[] = [];
  const visit = (command: Command, path: string) => {
    const help = command.createHelp();
    const options = [...help.visibleOptions(command)];
    if (command !== program) options.push(...globalOptions);
    const subcommands = help.visibleCommands(command).map((sub) => sub.name());
    specs.push({
      path,
      subcommands,
      flags: options.flatMap(flagsOf),
      valuedFlags: options.filter((option) => option.required || option.optional).flatMap(flagsOf),
      argumentKinds: command.registeredArguments.map((argument) => nameKindOf.get(argument)),
    });
    for (const sub of command.commands) {
      if (subcommands.includes(sub.name())) visit(sub, path ? `${path} ${sub.name()}` : sub.name());
    }
  };
  visit(program, '');
  return specs;
}

function flagsOf(option: Option): string[] {
  return [option.short, option.long].filter((flag): flag is string => flag !== undefined);
}

/** Words as a single-quoted shell word (names of commands and flags hold no quote, but be exact). */
function quoted(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The shell function both scripts share. It is written in the subset of bash that zsh's `bashcompinit` runs
 * too: no word splitting of variables (zsh does not split them), 0-based arrays only through `COMP_WORDS`
 * (bashcompinit sets `ksharrays`), and no variable named `path` (zsh ties it to `PATH`).
 */
function completionFunction(program: Command): string {
  const cases = commandSpecs(program).map((spec) => {
    const kinds = spec.argumentKinds
      .map((kind, index) => (kind ? `${index}) _fg_kind=${kind} ;;` : ''))
      .filter(Boolean);
    return [
      `    ${quoted(spec.path)})`,
      `      _fg_subcommands=${quoted(spec.subcommands.join(' '))}`,
      `      _fg_flags=${quoted(spec.flags.join(' '))}`,
      `      _fg_valued=${quoted(spec.valuedFlags.join(' '))}`,
      ...(kinds.length > 0 ? [`      case "$2" in ${kinds.join(' ')} esac`] : []),
      '      ;;',
    ].join('\n');
  });
  return `# Generated by \`fleetgate completion\` from fleetgate's own commands: regenerate after an upgrade.

# Sets _fg_subcommands, _fg_flags and _fg_valued for the command "$1" and, for its argument at position
# "$2", _fg_kind (devices, fleets or nothing).
_fleetgate_spec() {
  _fg_subcommands='' _fg_flags='' _fg_valued='' _fg_kind=''
  case "$1" in
${cases.join('\n')}
  esac
}

_fleetgate() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" command_path='' word i position=0 after_valued=''
  local _fg_subcommands _fg_flags _fg_valued _fg_kind
  _fleetgate_spec '' 0
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    if [[ -n $after_valued ]]; then
      after_valued=''
    elif [[ $word == -* ]]; then
      [[ $word != *=* && " $_fg_valued " == *" $word "* ]] && after_valued=1
    elif [[ $position == 0 && " $_fg_subcommands " == *" $word "* ]]; then
      command_path="\${command_path:+$command_path }$word"
      _fleetgate_spec "$command_path" 0
    else
      position=$((position + 1))
    fi
  done
  COMPREPLY=()
  # The value of an option: left to the shell's default (file names).
  [[ -n $after_valued ]] && return 0
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$_fg_flags" -- "$cur"))
  elif [[ -n $_fg_subcommands && $position == 0 ]]; then
    COMPREPLY=($(compgen -W "$_fg_subcommands" -- "$cur"))
  else
    _fleetgate_spec "$command_path" "$position"
    if [[ -n $_fg_kind ]]; then
      COMPREPLY=($(compgen -W "$(fleetgate __complete "$_fg_kind" 2>/dev/null)" -- "$cur"))
    fi
  fi
  return 0
}
`;
}

/** `fleetgate completion bash`. */
export function bashScript(program: Command): string {
  return `# bash completion for fleetgate: source <(fleetgate completion bash)
${completionFunction(program)}
complete -o default -F _fleetgate fleetgate
`;
}

/** `fleetgate completion zsh`: the same function, run by zsh's bash completion emulation. */
export function zshScript(program: Command): string {
  return `# zsh completion for fleetgate: source <(fleetgate completion zsh), after compinit
autoload -U +X compinit && { (( $+functions[compdef] )) || compinit; }
autoload -U +X bashcompinit && bashcompinit
${completionFunction(program)}
complete -o default -F _fleetgate fleetgate
`;
}
