import { expect, type Page, test } from '@playwright/test';
import {
  ADMIN_EMAIL,
  type Device,
  type Fleetgate,
  inspectPage,
  startDevice,
  startFleetgate,
} from './fleetgate.ts';

/**
 * The web terminal on the device page, in Debian's Chromium over plain HTTP on 127.0.0.1, to a real agent's shell:
 * typed commands and their output, the end of a session an administrator terminated, and no terminal for a viewer.
 */
test.describe.configure({ mode: 'serial' });

let fg: Fleetgate;
let device: Device;
let uuid: string;

test.beforeAll(async () => {
  fg = await startFleetgate();
  device = await startDevice(fg, 'workbench-pi');
  uuid = device.uuid;
});

test.afterAll(async () => {
  await device?.stop();
  await fg?.stop();
});

/** What the terminal shows, one line per row (xterm.js's DOM renderer draws a row as a div). */
const screen = async (page: Page) =>
  (await page.locator('.xterm-rows > div').allTextContents()).join('\n').replaceAll('\u00a0', ' ');

test('a command typed into the web terminal runs on the device and its output comes back', async ({
  page,
}) => {
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Terminal' }).click();
  await expect(page.getByText('Connected to workbench-pi')).toBeVisible();
  await page.getByTestId('terminal').click();
  await page.keyboard.type('uname -a; echo $((6*7))');
  await page.keyboard.press('Enter');
  await expect.poll(() => screen(page)).toMatch(/^42\s*$/m);
  await expect.poll(() => screen(page)).toMatch(/^Linux /m);
  // UTF-8 both ways: typed, echoed by the shell, printed back.
  await page.keyboard.type('echo "grüße ✓"');
  await page.keyboard.press('Enter');
  await expect.poll(() => screen(page)).toMatch(/^grüße ✓\s*$/m);
  await inspectPage(page, 'device-terminal');

  await page.keyboard.type('exit 7');
  await page.keyboard.press('Enter');
  await expect(page.getByText('The shell exited with code 7.')).toBeVisible();
  await page.getByRole('button', { name: 'Open a new session' }).click();
  await expect(page.getByText('Connected to workbench-pi')).toBeVisible();
});

test('the terminal follows the window: stty size changes when the window shrinks', async ({ page }) => {
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Terminal' }).click();
  await expect(page.getByText('Connected to workbench-pi')).toBeVisible();
  await page.getByTestId('terminal').click();
  const size = async () => {
    await page.keyboard.type('clear; stty size');
    await page.keyboard.press('Enter');
    let answer: string[] = [];
    await expect
      .poll(async () => {
        answer = /^(\d+) (\d+)\s*$/m.exec(await screen(page))?.slice(1) ?? [];
        return answer.length;
      })
      .toBe(2);
    return answer.map(Number) as [number, number];
  };
  const [rows, cols] = await size();
  expect(cols).toBeGreaterThan(80);
  await page.setViewportSize({ width: 900, height: 700 });
  await expect.poll(async () => (await size())[1]).toBeLessThan(cols);
  expect((await size())[0]).toBeLessThan(rows);
});

test('a look at another tab keeps the shell, and text is pasted in and copied out', async ({
  page,
  context,
}) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Terminal' }).click();
  await expect(page.getByText('Connected to workbench-pi')).toBeVisible();
  await page.getByTestId('terminal').click();
  await page.keyboard.type('KEPT=still-here');
  await page.keyboard.press('Enter');
  const sessions = async () => (await fg.api('GET', '/api/v1/sessions?surface=terminal')).body.items.length;
  const opened = await sessions();
  await page.getByRole('tab', { name: 'Variables' }).click();
  await expect(page.getByTestId('terminal')).toBeHidden();
  await page.getByRole('tab', { name: 'Terminal' }).click();
  // The same shell: its variable is there, and no second session was opened.
  await expect(page.getByText('Connected to workbench-pi')).toBeVisible();
  await page.getByTestId('terminal').click();
  await page.keyboard.type('echo "[$KEPT]"');
  await page.keyboard.press('Enter');
  await expect.poll(() => screen(page)).toMatch(/^\[still-here\]\s*$/m);
  expect(await sessions()).toBe(opened);

  // Paste: the browser's clipboard into the shell, as Ctrl+V does.
  await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((2+3))'));
  await page.keyboard.press('Control+V');
  await page.keyboard.press('Enter');
  await expect.poll(() => screen(page)).toMatch(/^pasted-5\s*$/m);
  // Copy: a word selected on the screen (double-click) reaches the clipboard with Ctrl+C, which is then no ^C.
  await page.evaluate(() => navigator.clipboard.writeText(''));
  const row = await page
    .locator('.xterm-rows > div', { hasText: /^pasted-5\s*$/ })
    .last()
    .boundingBox();
  // On its first characters (the screen above the rows takes the pointer, as a person's would).
  await page.mouse.dblclick(row!.x + 20, row!.y + row!.height / 2);
  await page.keyboard.press('Control+C');
  await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe('pasted-5');
});

test('an administrator ends the session from the sessions page and the terminal says so', async ({
  page,
  browser,
}) => {
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Terminal' }).click();
  await expect(page.getByText('Connected to workbench-pi')).toBeVisible();

  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  await fg.signIn(admin);
  await admin.goto(`${fg.url}/sessions`);
  // The first test's sessions have ended: the one live terminal session is this page's.
  await expect
    .poll(async () => {
      const listed = await fg.api('GET', '/api/v1/sessions?surface=terminal');
      return listed.body.items.filter((s: { live: boolean }) => s.live).length;
    })
    .toBe(1);
  await admin.getByRole('button', { name: `End ${ADMIN_EMAIL}'s session to workbench-pi` }).click();
  await admin.getByRole('dialog').getByRole('button', { name: 'End session' }).click();
  await expect(admin.getByText(/Ended .* terminal session to workbench-pi/)).toBeVisible();
  await adminContext.close();

  await expect(page.getByText('Ended by an administrator')).toBeVisible();
  await expect(page.getByText(`Terminated by ${ADMIN_EMAIL}.`)).toBeVisible();
  await inspectPage(page, 'device-terminal-ended');
});

test('a viewer gets no terminal on the device page', async ({ page }) => {
  const added = await fg.api('POST', '/api/v1/orgs/1/members', { email: 'viewer@e2e.test', role: 'viewer' });
  expect(added.status).toBe(201);
  await fg.signIn(page, 'viewer@e2e.test', added.body.password);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await expect(page.getByRole('tab', { name: 'Sessions' })).toBeVisible();
  await expect(page.getByRole('tab', { name: 'Terminal' })).toHaveCount(0);
});

test('a device that is offline gets an explanation instead of a terminal', async ({ page }) => {
  await device.agent.stop();
  await expect
    .poll(async () => (await fg.api('GET', `/api/v1/devices/${uuid}`)).body?.status, { timeout: 30_000 })
    .toBe('offline');
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Terminal' }).click();
  await expect(page.getByText('The terminal could not be opened', { exact: true })).toBeVisible();
  await expect(page.getByText(/The device is offline/)).toBeVisible();
  await inspectPage(page, 'device-terminal-offline');
});
