import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import type { Items, SshKey } from '../api.ts';
import { parseId } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';
import { readAll } from '../prompt.ts';

const sshKeyColumns: Column<SshKey>[] = [
  { header: 'ID', value: (key) => key.id },
  { header: 'NAME', value: (key) => key.name },
  { header: 'ALGORITHM', value: (key) => key.algorithm },
  { header: 'FINGERPRINT', value: (key) => key.fingerprint },
  { header: 'CREATED', value: (key) => key.createdAt },
  { header: 'LAST USED', value: (key) => key.lastUsedAt ?? 'never' },
];

/** Fields of `ssh-keys add`; the public key itself is long and already in the user's file. */
const sshKeyFields = ['id', 'name', 'algorithm', 'fingerprint', 'createdAt', 'lastUsedAt'];

/** `ssh-keys ls|add|rm`: my SSH public keys, for the SSH gateway. */
export function registerSshKeyCommands(program: Command, io: CliIo): void {
  const sshKeys = program.command('ssh-keys').description('my SSH public keys');

  sshKeys
    .command('ls')
    .description('list my SSH public keys')
    .action(async (_options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.list(await ctx.api<Items<SshKey>>('GET', '/ssh-keys'), sshKeyColumns, 'SSH keys');
    });

  sshKeys
    .command('add')
    .description('register an SSH public key')
    .argument('<file>', 'the public key file, e.g. ~/.ssh/id_ed25519.pub; - reads standard input')
    .option('--name <name>', 'a name for it (default: the comment in the key)')
    .action(async (file: string, options: { name?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const publicKey = (file === '-' ? await readAll(io.stdin) : await readKeyFile(file)).trim();
      if (publicKey === '') throw new CliError(`${file === '-' ? 'standard input' : file} is empty`);
      // Never send a private key anywhere, whatever file the user picked by mistake.
      if (publicKey.includes('PRIVATE KEY')) {
        throw new CliError('that is a private key: give the public one (the .pub file)');
      }
      const added = await ctx.api<SshKey>('POST', '/ssh-keys', { body: { publicKey, name: options.name } });
      if (ctx.out.json) ctx.out.record(added);
      else ctx.out.record(pick(added, sshKeyFields));
    });

  sshKeys
    .command('rm')
    .description('remove one of my SSH keys')
    .argument('<keyId>', 'SSH key id (from ssh-keys ls)', parseId)
    .action(async (keyId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/ssh-keys/${keyId}`);
      ctx.out.done(`removed SSH key ${keyId}`);
    });
}

async function readKeyFile(file: string): Promise<string> {
  // The shell expands a bare ~ but not a quoted one.
  const resolved = file.startsWith('~/') ? path.join(homedir(), file.slice(2)) : file;
  try {
    return await readFile(resolved, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code;
    throw new CliError(`cannot read ${file}: ${reason ?? String(error)}`, { cause: error });
  }
}

function pick(record: object, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([key]) => keys.includes(key)));
}
