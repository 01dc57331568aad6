import { execFile, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestServer, type TestServer } from '@fleetgate/server/test/harness.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCredentials } from '../src/config.ts';
import { cliBin } from './processes.ts';

/**
 * Shell completion as people use it: the script `fleetgate completion bash|zsh` prints, sourced into a real bash
 * (and zsh, when installed), with `fleetgate` on PATH as the real bin/fleetgate.js, completing device names from a
 * real server through `fleetgate __complete`.
 */

const run = promisify(execFile);
/** zsh is not on every machine; CI installs it, and there the zsh test fails rather than skip without it. */
const testZsh = spawnSync('zsh', ['-fc', 'true']).status === 0 || Boolean(process.env.CI);

let server: TestServer;
let dir: string;
/** The environment of a signed-in person: `fleetgate` on PATH, the login in its own config directory. */
let signedIn: NodeJS.ProcessEnv;
let signedOut: NodeJS.ProcessEnv;

beforeAll(async () => {
  server = await startTestServer();
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const address = server.app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the test server does not listen');
  dir = await mkdtemp(path.join(tmpdir(), 'fleetgate-completion-'));
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  await writeFile(path.join(bin, 'fleetgate'), `#!/bin/sh\nexec "${process.execPath}" "${cliBin}" "$@"\n`);
  await chmod(path.join(bin, 'fleetgate'), 0o755);
  const PATH = `${bin}:${process.env.PATH}`;
  signedIn = { PATH, HOME: dir, FLEETGATE_CONFIG_DIR: path.join(dir, 'in') };
  signedOut = { PATH, HOME: dir, FLEETGATE_CONFIG_DIR: path.join(dir, 'out') };
  await saveCredentials(signedIn, {
    server: `http://127.0.0.1:${address.port}`,
    token: server.adminToken,
    email: 'admin@example.test',
  });

  const fleet = await server.api('POST', '/api/v1/fleets', {
    token: server.adminToken,
    body: { orgId: 1, name: 'lobby', defaultDeviceType: 'raspberrypi4-64' },
  });
  for (const name of ['kiosk-17', 'kiosk-18', 'gateway-1']) {
    const device = await server.api('POST', '/api/v1/devices', {
      token: server.adminToken,
      body: { fleetId: fleet.body.id, name },
    });
    expect(device.status).toBe(201);
  }
  // Builds dist/ once if it is stale, so that no test below pays for it inside its completion.
  await run(process.execPath, [cliBin, '--version'], { env: signedOut });
}, 120_000);

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The candidates bash offers for the command line `words`, the cursor at the end of its last word. */
async function bashCompletes(words: string[], env: NodeJS.ProcessEnv): Promise<string[]> {
  const array = words.map((word) => `'${word}'`).join(' ');
  const { stdout } = await run(
    'bash',
    [
      '-c',
      `source <(fleetgate completion bash) && COMP_WORDS=(${array}) && COMP_CWORD=${words.length - 1} && ` +
        `_fleetgate && printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { env },
  );
  return stdout.split('\n').filter(Boolean);
}

describe('fleetgate completion', () => {
  it('prints a bash script that bash reads without a syntax error', async () => {
    const { stdout } = await run(process.execPath, [cliBin, 'completion', 'bash'], { env: signedOut });
    expect(stdout).toContain('complete -o default -F _fleetgate fleetgate');
    const script = path.join(dir, 'fleetgate.bash');
    await writeFile(script, stdout);
    await run('bash', ['-n', script]);
  });

  it('completes commands, subcommands and their options from the CLI itself', async () => {
    expect(await bashCompletes(['fleetgate', 'dev'], signedOut)).toEqual(['device-types', 'devices']);
    expect(await bashCompletes(['fleetgate', 'devices', 'r'], signedOut)).toEqual(['rename', 'rm', 'reject']);
    expect(await bashCompletes(['fleetgate', '--json', 'devices', 'rm', '42', '--y'], signedOut)).toEqual([
      '--yes',
    ]);
    // An option's value is not taken for a subcommand: `--server URL devices` still reaches `devices`.
    expect(
      await bashCompletes(['fleetgate', '--server', 'http://x', 'devices', 'ls', '--se'], signedOut),
    ).toEqual(['--search', '--server']);
    // The hidden helper is not offered.
    expect(await bashCompletes(['fleetgate', '__'], signedOut)).toEqual([]);
  });

  it("completes a device argument with the names of the signed-in person's devices", async () => {
    expect(await bashCompletes(['fleetgate', 'tunnel', 'kio'], signedIn)).toEqual(['kiosk-17', 'kiosk-18']);
    expect(await bashCompletes(['fleetgate', 'diagnose', ''], signedIn)).toEqual([
      'gateway-1',
      'kiosk-17',
      'kiosk-18',
    ]);
    // The second argument of `tunnel` is a port mapping: no names there.
    expect(await bashCompletes(['fleetgate', 'tunnel', 'kiosk-17', 'k'], signedIn)).toEqual([]);
  });

  it('offers nothing, quickly and silently, when no one is signed in', async () => {
    const started = Date.now();
    const { stdout, stderr } = await run(process.execPath, [cliBin, '__complete', 'devices'], {
      env: signedOut,
    });
    expect({ stdout, stderr }).toEqual({ stdout: '', stderr: '' });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await bashCompletes(['fleetgate', 'tunnel', ''], signedOut)).toEqual([]);
  });

  it('lists fleet names for __complete fleets', async () => {
    const { stdout } = await run(process.execPath, [cliBin, '__complete', 'fleets'], { env: signedIn });
    expect(stdout.split('\n')).toContain('lobby');
  });

  it.runIf(testZsh)('prints a zsh script whose function gives zsh the same candidates', async () => {
    const { stdout } = await run(process.execPath, [cliBin, 'completion', 'zsh'], { env: signedOut });
    const script = path.join(dir, 'fleetgate.zsh');
    await writeFile(script, stdout);
    await run('zsh', ['-n', script]);
    // zsh's bash emulation calls the function through `compgen -F`; zsh itself then keeps the candidates
    // that match what was typed, so compgen answers them all.
    const zshCompletes = async (words: string[]) => {
      const array = words.map((word) => `'${word}'`).join(' ');
      const answer = await run(
        'zsh',
        [
          '-fc',
          `source ${script} && COMP_WORDS=(${array}) && COMP_CWORD=${words.length - 1} && ` +
            `compgen -F _fleetgate -- '${words.at(-1)}'`,
        ],
        { env: signedIn },
      );
      return answer.stdout.split('\n').filter(Boolean);
    };
    expect(await zshCompletes(['fleetgate', 'devices', 'r'])).toContain('rm');
    expect(await zshCompletes(['fleetgate', 'devices', 'rm', '1', '--y'])).toContain('--yes');
    expect(await zshCompletes(['fleetgate', 'tunnel', 'k'])).toEqual(['gateway-1', 'kiosk-17', 'kiosk-18']);
  });
});
