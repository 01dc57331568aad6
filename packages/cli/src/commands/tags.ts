import type { Command } from 'commander';
import type { Tags } from '../api.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';

const tagColumns: Column<[string, string]>[] = [
  { header: 'KEY', value: ([key]) => key },
  { header: 'VALUE', value: ([, value]) => value },
];

/**
 * `<group> tag <owner> [key] [value] [--rm]` for devices and fleets: with a value sets the tag, with `--rm`
 * removes it, otherwise lists the tags (only `key` when given).
 */
export function registerTagCommand<Ref>(
  group: Command,
  io: CliIo,
  owner: {
    /** "device" or "fleet". */
    noun: string;
    argument: string;
    argumentHelp: string;
    parse(text: string): Ref;
    /** The owner's API path, e.g. `/devices/42`. */
    path(ref: Ref): string;
  },
): void {
  group
    .command('tag')
    .description(`set, remove or list a ${owner.noun}'s tags`)
    .argument(owner.argument, owner.argumentHelp, owner.parse)
    .argument('[key]', 'tag key')
    .argument('[value]', 'new value (omit to show the tag)')
    .option('--rm', 'remove the tag')
    .addHelpText(
      'after',
      `\nExamples:\n  fleetgate ${group.name()} tag 42 site paris\n  fleetgate ${group.name()} tag 42 site --rm\n` +
        `  fleetgate ${group.name()} tag 42`,
    )
    .action(
      async (
        ref: Ref,
        key: string | undefined,
        value: string | undefined,
        options: { rm?: boolean },
        command: Command,
      ) => {
        const ctx = new CommandContext(io, command);
        const ownerPath = owner.path(ref);
        if (options.rm) {
          if (key === undefined) throw new CliError('which tag? give its key: tag <owner> <key> --rm');
          if (value !== undefined) throw new CliError('--rm takes no value');
          await ctx.api('DELETE', `${ownerPath}${apiPath`/tags/${key}`}`);
          ctx.out.done(`removed tag ${key} from ${owner.noun} ${String(ref)}`);
          return;
        }
        if (value !== undefined && key !== undefined) {
          await ctx.api('PUT', `${ownerPath}${apiPath`/tags/${key}`}`, { body: { value } });
          ctx.out.done(`tagged ${owner.noun} ${String(ref)}: ${key}=${value}`);
          return;
        }
        const { tags } = await ctx.api<{ tags: Tags }>('GET', `${ownerPath}/tags`);
        if (key !== undefined && !Object.hasOwn(tags, key)) {
          throw new CliError(`${owner.noun} ${String(ref)} has no tag "${key}"`);
        }
        const shown = key === undefined ? tags : { [key]: tags[key] ?? '' };
        // JSON keeps the API's shape, { tags: { key: value } }.
        if (ctx.out.json) ctx.out.record({ tags: shown });
        else ctx.out.list({ items: Object.entries(shown) }, tagColumns, 'tags');
      },
    );
}
