import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from './log.ts';
import { renderEnvFile, shellQuote, VariablesApplier } from './variables.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-agent-vars-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** What `sh` reads back from an env file for `name`. */
function shRead(file: string, name: string): string {
  return execFileSync('/bin/sh', ['-c', `. "$1"; printf %s "$${name}"`, 'sh', file], { encoding: 'utf8' });
}

describe('env file', () => {
  it('quotes values so sh reads back exactly what was sent', () => {
    const tricky = {
      QUOTES: `it's "quoted" 'twice'`,
      DOLLAR: '$HOME `id` $(id) \\n \\',
      NEWLINES: 'line 1\nline 2\n',
      SPACES: '  leading and trailing  ',
      EMPTY: '',
      HASH: '# not a comment; ok=1',
    };
    const file = path.join(dir, 'tricky.env');
    fs.writeFileSync(file, renderEnvFile(tricky).content);
    for (const [name, value] of Object.entries(tricky)) expect(shRead(file, name)).toBe(value);
  });

  it('fuzz: any printable value survives sh', () => {
    const file = path.join(dir, 'fuzz.env');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-ascii', maxLength: 40 }), (value) => {
        fs.writeFileSync(file, renderEnvFile({ V: value }).content);
        expect(shRead(file, 'V')).toBe(value);
      }),
      { numRuns: 60 },
    );
  });

  it('sorts names and skips what an env file cannot hold', () => {
    const { content, skipped } = renderEnvFile({ B: '2', A: '1', 'NOT VALID': 'x', NUL: 'a\0b', '1X': 'y' });
    expect(content.split('\n').slice(1)).toEqual(["A='1'", "B='2'", '']);
    expect(skipped.sort()).toEqual(['1X', 'NOT VALID', 'NUL']);
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });

  it('runs the hook only when the content changed, and kills a hook that hangs', async () => {
    const envFile = path.join(dir, 'app.env');
    const counter = path.join(dir, 'count');
    const applier = new VariablesApplier({
      envFile,
      hook: `echo x >> ${counter}`,
      hookTimeoutMs: 5000,
      log: silentLogger,
    });
    expect(await applier.apply({ A: '1' })).toEqual({ changed: true, hookRan: true });
    expect(await applier.apply({ A: '1' })).toEqual({ changed: false, hookRan: false });
    expect(await applier.apply({ A: '2' })).toEqual({ changed: true, hookRan: true });
    expect(fs.readFileSync(counter, 'utf8')).toBe('x\nx\n');

    const hanging = new VariablesApplier({
      envFile: path.join(dir, 'other.env'),
      hook: 'sleep 30',
      hookTimeoutMs: 200,
      log: silentLogger,
    });
    const started = performance.now();
    const result = await hanging.apply({ A: '1' });
    expect(result.error).toMatch(/did not finish within 200 ms/);
    expect(performance.now() - started).toBeLessThan(3000);
  });
});
