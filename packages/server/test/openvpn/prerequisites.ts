import { describe, expect, it } from 'vitest';
import { openvpnToolsMissing } from './netns.ts';

/**
 * What an OpenVPN test file needs (netns.ts `openvpnToolsMissing`): answers why it cannot run here, or undefined.
 * When something is missing it prints a loud `SKIPPED` line; on CI (.ci/run sets CI=1, installs the packages and
 * runs as root) it adds a failing test instead, so CI never skips a suite silently.
 */
export function openvpnPrerequisites(suite: string): string | undefined {
  const missing = openvpnToolsMissing();
  if (missing) console.warn(`SKIPPED ${suite}: ${missing}`);
  describe.runIf(missing && process.env.CI)(`${suite}: prerequisites`, () => {
    it('are present on CI', () => {
      expect.fail(`${suite} cannot run: ${missing}`);
    });
  });
  return missing;
}
