import type { Command } from 'commander';
import type { CliIo } from '../context.ts';
import { CliError } from '../errors.ts';

/** `agent <command> [--config FILE]`: the device agent, the same as `fleetgate-agent <command>`. */
export function registerAgentCommand(program: Command, io: CliIo): void {
  program
    .command('agent')
    .description(
      'run the device agent: `fleetgate agent run|enroll|status --config FILE` (as fleetgate-agent)',
    )
    .argument('[args...]', 'the agent command and its options')
    // Everything after `agent` belongs to the agent's own parser.
    .allowUnknownOption()
    .helpOption(false)
    .action(async (args: string[]) => {
      // Loaded here, not at the top: the agent's modules would slow every other command down.
      const { runAgentCli } = await import('@fleetgate/agent');
      const code = await runAgentCli(args, { stdout: io.stdout, stderr: io.stderr, env: io.env });
      // The agent printed its own reason; the CLI passes its exit code on.
      if (code !== 0) throw new CliError(`the agent exited with code ${code}`, { exitCode: code });
    });
}
