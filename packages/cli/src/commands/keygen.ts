import { generateKeyPair } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseCount } from '../arguments.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';

const generate = promisify(generateKeyPair);

export const keyTypes = ['ed25519', 'ecdsa', 'rsa'] as const;
export type KeyType = (typeof keyTypes)[number];

/** One device key pair as PEM: the private key (PKCS#8, what mender-client reads) and the public key (SPKI). */
export async function deviceKeyPair(type: KeyType): Promise<{ privatePem: string; publicPem: string }> {
  const pair =
    type === 'rsa'
      ? await generate('rsa', { modulusLength: 3072 })
      : type === 'ecdsa'
        ? await generate('ec', { namedCurve: 'prime256v1' })
        : await generate('ed25519', {});
  return {
    privatePem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** A CSV field, quoted when it holds a comma, quote or line break (RFC 4180). */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * Progress on standard error for long work: a line rewritten in place on a terminal, nothing otherwise
 * (scripts read the summary, not a stream of progress lines).
 */
export function progressBar(io: CliIo, label: string, total: number) {
  const tty = (io.stderr as { isTTY?: boolean }).isTTY === true;
  return {
    update(done: number) {
      if (!tty || total === 0) return;
      const width = 30;
      const filled = Math.round((done / total) * width);
      io.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`);
    },
    done() {
      if (tty && total > 0) io.stderr.write('\n');
    },
  };
}

function parsePrefix(text: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(text))
    throw new InvalidArgumentError('letters, digits, ".", "_" and "-" only (at most 64)');
  return text;
}

/**
 * `keygen`: key pairs for devices to preauthorize, made on a trusted machine. Writes `<id>.key` (private,
 * 0600) for each device and `devices.csv` (`identity,public_key`, identity as JSON {"serial":"<id>"}) for
 * `fleetgate preauth --csv`.
 */
export function registerKeygenCommand(program: Command, io: CliIo): void {
  program
    .command('keygen')
    .description('generate device key pairs and a CSV to preauthorize them (`fleetgate preauth --csv`)')
    .requiredOption('--count <n>', 'number of devices', parseCount)
    .requiredOption('--out <dir>', 'directory for the private keys and devices.csv (created if missing)')
    .option('--prefix <prefix>', 'serial number prefix: <prefix>0001, <prefix>0002, …', parsePrefix, 'D')
    .option('--start <n>', 'first number', parseCount, 1)
    .addOption(new Option('--type <type>', 'key type').choices(keyTypes).default('ed25519'))
    .action(
      async (
        options: { count: number; out: string; prefix: string; start: number; type: KeyType },
        command: Command,
      ) => {
        const ctx = new CommandContext(io, command);
        if (options.count > 100_000) throw new CliError('--count: at most 100000 at a time');
        const dir = path.resolve(options.out);
        await fs.mkdir(dir, { recursive: true, mode: 0o700 });
        const csvPath = path.join(dir, 'devices.csv');
        const width = Math.max(4, String(options.start + options.count - 1).length);
        const lines = ['identity,public_key'];
        const devices: { serial: string; privateKey: string }[] = [];
        const progress = progressBar(io, 'generating', options.count);
        for (let i = 0; i < options.count; i++) {
          const serial = `${options.prefix}${String(options.start + i).padStart(width, '0')}`;
          const keyFile = path.join(dir, `${serial}.key`);
          const { privatePem, publicPem } = await deviceKeyPair(options.type);
          // wx: never overwrite a key that may already be on a device.
          await fs
            .writeFile(keyFile, privatePem, { mode: 0o600, flag: 'wx' })
            .catch((error: NodeJS.ErrnoException) => {
              throw error.code === 'EEXIST'
                ? new CliError(`${keyFile} exists already: choose another --out, --prefix or --start`)
                : error;
            });
          lines.push(`${csvField(JSON.stringify({ serial }))},${csvField(publicPem.trim())}`);
          devices.push({ serial, privateKey: keyFile });
          progress.update(i + 1);
        }
        progress.done();
        await fs.writeFile(csvPath, `${lines.join('\n')}\n`, { mode: 0o644 });
        ctx.out.result({ csv: csvPath, type: options.type, devices }, (r) =>
          [
            `generated ${r.devices.length} ${r.type} key pairs in ${dir}`,
            `private keys: <serial>.key (mode 0600; install each as the device's mender-agent.pem)`,
            `preauthorize them: fleetgate preauth --csv ${csvPath} --fleet <fleetId>`,
            '',
          ].join('\n'),
        );
      },
    );
}
