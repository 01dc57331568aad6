import type { Command } from 'commander';
import type { CliIo } from '../context.ts';
import { CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';

interface InitOptions {
  host: string[];
  dataDir?: string;
  force?: boolean;
  newCa?: boolean;
  renew?: boolean;
}

/** `init`: creates the local CA and the server certificate `fleetgate serve` then speaks HTTPS with. */
export function registerInitCommand(program: Command, io: CliIo): void {
  program
    .command('init')
    .description(
      'create a local CA and an HTTPS server certificate in <data dir>/tls/ (serve then speaks HTTPS)',
    )
    .option(
      '--host <name>',
      'a host name or IP address devices and people use to reach this server; repeat for more ' +
        '(localhost and 127.0.0.1 are always included; with --renew, added to the names already served)',
      (value: string, previous: string[] = []) => [...previous, value],
      [],
    )
    .option('--data-dir <dir>', 'data directory (default: FLEETGATE_DATA_DIR, then ./data)')
    .option('--force', 'replace existing files (keeps an existing CA so devices keep trusting it)')
    .option(
      '--new-ca',
      'with --force, replace the CA too (every device and client must trust the new ca.crt)',
    )
    .option(
      '--renew',
      'issue a new server certificate from the existing CA, for the same names (plus any --host); nothing else ' +
        'changes, and a running server picks it up',
    )
    .action(async (options: InitOptions, command: Command) => {
      const ctx = new CommandContext(io, command);
      if (options.newCa && !options.force) throw new CliError('--new-ca replaces files: add --force');
      if (options.renew && (options.force || options.newCa)) {
        throw new CliError('--renew keeps the CA and every other file: leave out --force and --new-ca');
      }
      if (!options.renew && options.host.length === 0) {
        throw new CliError(
          "--host <name> is required: the name or address clients reach this server by (or --renew to keep the certificate's names)",
        );
      }
      if (options.renew && io.env.FLEETGATE_TLS_CERT) {
        throw new CliError(
          `the server serves FLEETGATE_TLS_CERT=${io.env.FLEETGATE_TLS_CERT}, a certificate from elsewhere: renew it ` +
            'where it came from (fleetgate reloads the file when it changes); --renew renews only what fleetgate init issued',
        );
      }
      // Loaded here, not at the top: the server's dependencies would slow every other command down.
      const { initTls, renewServerCertificate, TlsError } = await import('@fleetgate/server');
      const path = await import('node:path');
      const dataDir = path.resolve(options.dataDir || io.env.FLEETGATE_DATA_DIR || './data');
      let result: Awaited<ReturnType<typeof initTls>>;
      try {
        result = options.renew
          ? await renewServerCertificate({ dataDir, hosts: options.host })
          : await initTls({
              dataDir,
              hosts: options.host,
              force: options.force === true,
              newCa: options.newCa === true,
            });
      } catch (error) {
        if (error instanceof TlsError) throw new CliError(error.message, { cause: error });
        if (error instanceof Error && /neither a host name/.test(error.message)) {
          throw new CliError(`--host ${error.message}`, { cause: error });
        }
        throw error;
      }
      const { files } = result;
      const first = result.altNames[0]?.value ?? 'localhost';
      const origin = `https://${first.includes(':') ? `[${first}]` : first}:8080`;
      const serveCommand = `npx fleetgate serve${options.dataDir ? ` --data-dir ${options.dataDir}` : ''}`;
      if (ctx.out.json) {
        ctx.out.record({
          dataDir,
          caCert: files.caCert,
          caKey: files.caKey,
          serverCert: files.serverCert,
          serverKey: files.serverKey,
          written: result.written,
          keptCa: result.keptCa,
          hosts: result.altNames.map((name) => name.value),
          serverValidTo: result.serverValidTo.toISOString(),
          caValidTo: result.caValidTo.toISOString(),
          serverFingerprint: result.serverFingerprint,
          caFingerprint: result.caFingerprint,
          renewed: options.renew === true,
        });
        return;
      }
      const lines = [
        `Wrote ${files.dir}/`,
        ...result.written.map((file) => {
          const name = path.basename(file);
          const what: Record<string, string> = {
            'ca.crt': 'the CA certificate: give it to devices and clients to trust',
            'ca.key': 'the CA private key (0600): keep it secret, it signs server certificates',
            'server.crt': `the server certificate, valid until ${result.serverValidTo.toISOString().slice(0, 10)}`,
            'server.key': 'the server private key (0600)',
          };
          return `  ${name.padEnd(11)} ${what[name] ?? ''}`;
        }),
        ...(result.keptCa
          ? [
              `  (kept the existing CA ${files.caCert}, valid until ${result.caValidTo.toISOString().slice(0, 10)})`,
            ]
          : []),
        `The server certificate is for: ${result.altNames.map((name) => name.value).join(', ')}`,
        `Fingerprint (SHA-256): ${result.serverFingerprint}`,
        `CA fingerprint (SHA-256): ${result.caFingerprint}   (\`fleetgate login\` shows it before trusting the CA)`,
        '',
        'Next:',
        `  ${serveCommand}    serves HTTPS with it (a running server picks up the new certificate by itself)`,
        `  curl --cacert ${files.caCert} ${origin}/healthz`,
        `  npx fleetgate login --server ${origin} --ca ${files.caCert}`,
        '',
      ];
      io.stdout.write(lines.join('\n'));
    });
}
