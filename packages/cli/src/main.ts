import { runCli } from './index.ts';

// Sets the exit code rather than exiting, so output still being written to a pipe is not cut off, and
// `serve` keeps running after its start.
process.exitCode = await runCli(process.argv.slice(2));
