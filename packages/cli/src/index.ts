import { Command, CommanderError } from 'commander';
import packageJson from '../package.json' with { type: 'json' };
import { ApiError } from './client.ts';
import { registerAgentCommand } from './commands/agent.ts';
import { registerApiKeyCommands } from './commands/api-keys.ts';
import { registerAuditCommand } from './commands/audit.ts';
import { registerAuthCommands } from './commands/auth.ts';
import { registerBackupCommands } from './commands/backup.ts';
import { registerCompletionCommands } from './commands/completion.ts';
import { registerContextCommands } from './commands/context.ts';
import { registerCpCommand } from './commands/cp.ts';
import { registerDeviceTypeCommands } from './commands/device-types.ts';
import { registerDeviceCommands } from './commands/devices.ts';
import { registerDiagnoseCommand } from './commands/diagnose.ts';
import { registerDoctorCommand } from './commands/doctor.ts';
import { registerFleetCommands } from './commands/fleets.ts';
import { registerImportCommands } from './commands/import.ts';
import { registerInitCommand } from './commands/init.ts';
import { registerKeygenCommand } from './commands/keygen.ts';
import { registerMemberCommands } from './commands/members.ts';
import { registerOpenSshCommands } from './commands/openssh.ts';
import { registerOrgCommands } from './commands/orgs.ts';
import { registerPreauthCommand } from './commands/preauth.ts';
import { registerProvisioningKeyCommands } from './commands/provisioning-keys.ts';
import { registerDecommissionCommand, registerRecoveryCommands } from './commands/recovery.ts';
import { registerSecretsCommands } from './commands/secrets.ts';
import { registerServeCommand } from './commands/serve.ts';
import { registerSessionPlayCommand } from './commands/session-play.ts';
import { registerSessionCommands } from './commands/sessions.ts';
import { registerSshKeyCommands } from './commands/ssh-keys.ts';
import { registerTunnelCommand } from './commands/tunnel.ts';
import { registerUserCommands } from './commands/users.ts';
import { registerVariableCommands } from './commands/vars.ts';
import { registerVpnCommands } from './commands/vpn.ts';
import { type CliIo, processIo } from './context.ts';
import { CliError } from './errors.ts';

export { ApiClient, ApiError, apiPath } from './client.ts';
export {
  type Credentials,
  credentialsFile,
  readCredentials,
  resolveConnection,
  saveCredentials,
} from './config.ts';
export { type CliIo, CommandContext, type GlobalOptions, processIo } from './context.ts';
export { CliError } from './errors.ts';
export { type MemoryIo, memoryIo } from './memory-io.ts';
export { type Column, formatJson, formatRecord, formatTable, Output } from './output.ts';

/**
 * The `fleetgate` command with every subcommand, writing to `io`. It never exits the process: commander's
 * own errors (unknown option, missing argument, --help) are thrown as `CommanderError` after printing.
 * `runCli` is the usual way to run it.
 */
export function buildProgram(io: CliIo = processIo()): Command {
  const program = new Command('fleetgate')
    .description('fleetgate: manage organizations, fleets and devices on a fleetgate server')
    .version(packageJson.version, '-V, --version')
    .option('--server <url>', 'server URL (default: FLEETGATE_SERVER, then the saved login)')
    .option('--token <token>', 'session token or API key (default: FLEETGATE_TOKEN, then the saved login)')
    .option(
      '--profile <name>',
      'the saved login to use (default: FLEETGATE_PROFILE, then the current one: `fleetgate context ls`)',
    )
    .option('--json', 'print the JSON answer of the API, for scripts')
    // Subcommands inherit the three settings below when they are created, so they come first.
    .exitOverride()
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => write(`fleetgate: ${text.replace(/^error: /, '')}`),
    });

  registerServeCommand(program, io);
  registerInitCommand(program, io);
  registerAgentCommand(program, io);
  registerAuthCommands(program, io);
  registerContextCommands(program, io);
  registerOrgCommands(program, io);
  registerUserCommands(program, io);
  registerMemberCommands(program, io);
  registerFleetCommands(program, io);
  registerDeviceTypeCommands(program, io);
  registerDeviceCommands(program, io);
  registerDecommissionCommand(program, io);
  registerKeygenCommand(program, io);
  registerPreauthCommand(program, io);
  registerProvisioningKeyCommands(program, io);
  registerRecoveryCommands(program, io);
  registerImportCommands(program, io);
  registerBackupCommands(program, io);
  registerDoctorCommand(program, io);
  registerVariableCommands(program, io);
  registerApiKeyCommands(program, io);
  registerSshKeyCommands(program, io);
  registerTunnelCommand(program, io);
  registerDiagnoseCommand(program, io);
  registerCpCommand(program, io);
  registerOpenSshCommands(program, io);
  registerSessionPlayCommand(registerSessionCommands(program, io), io);
  registerAuditCommand(program, io);
  registerSecretsCommands(program, io);
  registerVpnCommands(program, io);
  registerCompletionCommands(program, io);
  return program;
}

/**
 * Runs `fleetgate <args>` (without `node` and the script) and answers its exit code. Failures are printed
 * as one line, `fleetgate: <reason>`, on `io.stderr`. `serve` answers once the server listens; the process
 * then lives on until a signal stops the server.
 */
export async function runCli(args: readonly string[], io: CliIo = processIo()): Promise<number> {
  try {
    await buildProgram(io).parseAsync([...args], { from: 'user' });
    return 0;
  } catch (error) {
    return reportFailure(error, io);
  }
}

/** Prints why a command failed and answers the exit code. */
export function reportFailure(error: unknown, io: Pick<CliIo, 'stderr' | 'env'>): number {
  // Commander has printed its own message (or the help) already.
  if (error instanceof CommanderError) return error.exitCode;
  if (error instanceof CliError) {
    // No message: an exit status handed on as it is (`ssh-proxy` returning the remote command's).
    if (error.message) io.stderr.write(`fleetgate: ${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof ApiError) {
    io.stderr.write(`fleetgate: ${describeApiError(error)}\n`);
    return 1;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.stderr.write(`fleetgate: unexpected error: ${message}\n`);
  if (io.env.FLEETGATE_DEBUG && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
  else io.stderr.write('fleetgate: set FLEETGATE_DEBUG=1 to see where it happened\n');
  return 1;
}

function describeApiError(error: ApiError): string {
  // The server tells API users to POST /auth/login; a CLI user needs the command instead.
  if (error.status === 401 && error.path !== '/auth/login') {
    return `${error.message.replace(/:? sign in again.*$/, '')}: run \`fleetgate login --server URL\``;
  }
  // Some refusals say when to try again in their message already; others only in `Retry-After`.
  if (error.retryAfterSeconds !== undefined && !/try again in \d+ s/.test(error.message)) {
    return `${error.message.replace(/:? try again later$/, '')}: try again in ${error.retryAfterSeconds} s`;
  }
  return error.message;
}
