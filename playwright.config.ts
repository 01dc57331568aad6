import { defineConfig } from '@playwright/test';

/**
 * The admin web UI in a real browser: Debian's Chromium (`apt-get install chromium`; Playwright's own browser
 * downloads are never used), against a real `fleetgate serve` and real agents (packages/web/test/e2e).
 */
export default defineConfig({
  testDir: 'packages/web/test/e2e',
  testMatch: '**/*.spec.ts',
  // One server and one story per file, on two shared cores: files run one after another.
  workers: 1,
  fullyParallel: false,
  timeout: 120_000,
  expect: { timeout: 15_000 },
  reporter: [['list']],
  outputDir: 'test-results/playwright',
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    // No transitions: a page is checked as it settles, not halfway through a fade.
    contextOptions: { reducedMotion: 'reduce' },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      // Without the background-networking flags Chromium keeps dialing Google's hosts, which this network refuses.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'off',
    screenshot: 'only-on-failure',
  },
});
