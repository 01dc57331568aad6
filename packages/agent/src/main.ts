import { runAgentCli } from './cli.ts';

// Sets the exit code rather than exiting, so log lines still being written to a pipe are not cut off.
process.exitCode = await runAgentCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
