/**
 * Variables delivery: the server pushes the device's effective variables (fleet + device); the agent
 * writes them to an env file and, when the file's content changed, runs the hook command (typically
 * `systemctl restart <the service that reads the file>`, seed 001).
 *
 * The file is read both by systemd (`EnvironmentFile=`) and by shells (`. file`), so every value is
 * single-quoted, which both read literally; a single quote inside a value is written as `'\''` (close
 * the quotes, an escaped quote, reopen), which both also read the same way.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './credentials.ts';
import type { Logger } from './log.ts';

/** A name both systemd and sh accept. */
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The env file's content for `variables`, keys sorted so equal variables give equal bytes. */
export function renderEnvFile(variables: Record<string, string>): { content: string; skipped: string[] } {
  const lines = ['# Written by fleetgate-agent from the device variables; changes here are overwritten.'];
  const skipped: string[] = [];
  for (const name of Object.keys(variables).sort()) {
    const value = variables[name]!;
    // A NUL cannot be in an environment; a bad name would be misread or refused by systemd.
    if (!VARIABLE_NAME.test(name) || value.includes('\0')) {
      skipped.push(name);
      continue;
    }
    lines.push(`${name}=${shellQuote(value)}`);
  }
  return { content: `${lines.join('\n')}\n`, skipped };
}

/** `value` in single quotes, safe for sh and for systemd's EnvironmentFile parser. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

export interface VariablesOptions {
  envFile: string;
  /** Run through `/bin/sh -c` after the file changed. */
  hook?: string;
  hookTimeoutMs: number;
  /** The hook's environment (the agent's own, passed in: the library does not read process.env). */
  hookEnv?: NodeJS.ProcessEnv;
  log: Logger;
}

/** What applying one `variables` message did; `error` goes back in `variables-applied`. */
export interface AppliedVariables {
  changed: boolean;
  hookRan: boolean;
  error?: string;
}

/**
 * Applies variables messages one at a time, in order: a message that arrives while the hook of the
 * previous one still runs waits for it, so two hooks never run at once.
 */
export class VariablesApplier {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: VariablesOptions) {}

  apply(variables: Record<string, string>): Promise<AppliedVariables> {
    const next = this.queue.then(() => this.applyNow(variables));
    this.queue = next.catch(() => {});
    return next;
  }

  private async applyNow(variables: Record<string, string>): Promise<AppliedVariables> {
    const { envFile, log } = this.options;
    const { content, skipped } = renderEnvFile(variables);
    const problems: string[] = [];
    if (skipped.length > 0)
      problems.push(`skipped variables with names or values an env file cannot hold: ${skipped.join(', ')}`);
    let current: string | undefined;
    try {
      current = fs.readFileSync(envFile, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === content) return { changed: false, hookRan: false, ...errorOf(problems) };
    try {
      fs.mkdirSync(path.dirname(envFile), { recursive: true, mode: 0o700 });
      writeFileAtomic(envFile, content);
    } catch (error) {
      problems.push(`cannot write ${envFile}: ${(error as Error).message}`);
      return { changed: false, hookRan: false, ...errorOf(problems) };
    }
    log.info('variables written', { envFile, count: Object.keys(variables).length - skipped.length });
    if (!this.options.hook) return { changed: true, hookRan: false, ...errorOf(problems) };
    const hookError = await runHook(this.options.hook, this.options);
    if (hookError) {
      log.warn('the variables hook failed', { hook: this.options.hook, error: hookError });
      problems.push(hookError);
    } else {
      log.info('the variables hook ran', { hook: this.options.hook });
    }
    return { changed: true, hookRan: true, ...errorOf(problems) };
  }
}

function errorOf(problems: string[]): { error?: string } {
  return problems.length > 0 ? { error: problems.join('; ').slice(0, 1024) } : {};
}

/** Runs the hook; answers why it failed, or undefined. Output goes to the log (its tail on failure). */
function runHook(hook: string, options: VariablesOptions): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', hook], {
      env: { ...options.hookEnv, FLEETGATE_ENV_FILE: options.envFile },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a timeout kills the hook's children too (`sleep` in a script, …).
      detached: true,
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-2000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, options.hookTimeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve(`the hook could not start: ${error.message}`);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) resolve(`the hook did not finish within ${options.hookTimeoutMs} ms and was killed`);
      else if (code === 0) resolve(undefined);
      else {
        const tail = output.trim().split('\n').slice(-3).join(' | ');
        resolve(
          `the hook exited with ${code === null ? `signal ${signal}` : `code ${code}`}${tail ? `: ${tail}` : ''}`,
        );
      }
    });
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Gone already.
  }
}
