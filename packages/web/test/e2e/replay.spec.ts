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
 * Session replay, in Debian's Chromium: a recorded web terminal session played back with asciinema-player from
 * the sessions page and from the device page, beside who, when, where and the session's audit trail; and a
 * recording kept from a viewer and from another organization.
 */
test.describe.configure({ mode: 'serial' });

let fg: Fleetgate;
let device: Device;
let uuid: string;
/** The recorded session the first test opens. */
let sessionId: string;

test.beforeAll(async () => {
  fg = await startFleetgate();
  device = await startDevice(fg, 'replay-pi');
  uuid = device.uuid;
  const recording = await fg.api('PUT', '/api/v1/orgs/1/session-recording', { enabled: true });
  expect(recording.body).toEqual({ orgId: 1, enabled: true });
});

test.afterAll(async () => {
  await device?.stop();
  await fg?.stop();
});

const screen = async (page: Page) =>
  (await page.locator('.xterm-rows > div').allTextContents()).join('\n').replaceAll('\u00a0', ' ');

/** The replay page's facts and audit trail for the session, as anyone may check them. */
async function expectReplayOf(page: Page) {
  await expect(
    page.getByRole('heading', { name: `Session replay: ${ADMIN_EMAIL} on replay-pi` }),
  ).toBeVisible();
  const facts = page.getByRole('table', { name: 'Session facts' });
  await expect(facts.getByRole('row', { name: /Who/ })).toContainText(ADMIN_EMAIL);
  await expect(facts.getByRole('row', { name: /Device/ })).toContainText('replay-pi');
  await expect(facts.getByRole('row', { name: /Surface/ })).toContainText('terminal');
  await expect(facts.getByRole('row', { name: /Duration/ })).toContainText(/\d+ s/);
  await expect(facts.getByRole('row', { name: /Outcome/ })).toContainText('closed');
  const trail = page.getByRole('table', { name: 'Audit trail' });
  // Oldest first: the stream opened, recording started, the stream closed.
  await expect(trail.getByRole('code')).toHaveText([
    'device.stream.open',
    'session.recording.start',
    'device.stream.close',
  ]);
  // The player plays the shell's output: the command's answer, which the typed line (echoed) does not contain.
  await expect(page.getByTestId('replay-player')).toContainText('replay-42');
}

test('a recorded web terminal session replays from the sessions page, beside who, when, where and its audit trail', async ({
  page,
}) => {
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Terminal' }).click();
  await expect(page.getByText('Connected to replay-pi')).toBeVisible();
  await page.getByTestId('terminal').click();
  await page.keyboard.type('echo replay-$((6*7))');
  await page.keyboard.press('Enter');
  await expect.poll(() => screen(page)).toMatch(/^replay-42\s*$/m);
  await page.keyboard.type('exit');
  await page.keyboard.press('Enter');
  await expect(page.getByText('The shell exited with code 0.')).toBeVisible();

  await page.goto(`${fg.url}/sessions`);
  await page.getByText('Ended', { exact: true }).click();
  const sessions = page.getByRole('table', { name: 'Sessions' });
  await expect(sessions.getByRole('row')).toHaveCount(2);
  sessionId = (await sessions.locator('tr[data-session]').getAttribute('data-session')) ?? '';
  expect(sessionId).toMatch(/^[0-9a-f]{16,32}$/);
  // The recording is fetched by the page with its session cookie, same origin, nothing in the URL.
  const recordingRequest = page.waitForRequest((r) => r.url().includes(`/sessions/${sessionId}/recording`));
  await page.getByRole('link', { name: `Replay ${ADMIN_EMAIL}'s session to replay-pi` }).click();
  await expect(page).toHaveURL(`${fg.url}/sessions/${sessionId}`);
  const request = await recordingRequest;
  expect(request.url()).toBe(`${fg.url}/api/v1/sessions/${sessionId}/recording`);
  const headers = await request.allHeaders();
  expect(headers.cookie).toBeTruthy();
  expect(headers.authorization).toBeUndefined();
  await expectReplayOf(page);
  await inspectPage(page, 'session-replay');
});

test("a device's recorded sessions replay from its page", async ({ page }) => {
  await fg.signIn(page);
  const response = await page.goto(`${fg.url}/devices/${uuid}`);
  // The page may compile WebAssembly (asciinema-player's terminal) but still not evaluate strings as code.
  const scriptSrc = /script-src ([^;]*)/.exec(response?.headers()['content-security-policy'] ?? '')?.[1];
  expect(scriptSrc?.split(' ').sort()).toEqual(["'self'", "'wasm-unsafe-eval'"]);
  await page.getByRole('tab', { name: 'Sessions' }).click();
  await page.getByRole('link', { name: `Replay ${ADMIN_EMAIL}'s session to replay-pi` }).click();
  await expect(page).toHaveURL(`${fg.url}/sessions/${sessionId}`);
  await expectReplayOf(page);
  await expect(page.getByTestId('replay-player').locator('.ap-player')).toBeVisible();
  await inspectPage(page, 'session-replay-from-device');
});

test('a viewer and another organization cannot fetch the recording; the viewer is told why', async ({
  page,
}) => {
  const viewer = await fg.api('POST', '/api/v1/orgs/1/members', { email: 'viewer@e2e.test', role: 'viewer' });
  expect(viewer.status).toBe(201);
  const viewerToken = await fg.login('viewer@e2e.test', viewer.body.password);
  const outsider = await fg.api('POST', '/api/v1/users', {
    email: 'outsider@e2e.test',
    password: 'outsider password',
  });
  expect(outsider.status).toBe(201);
  const outsiderToken = await fg.login('outsider@e2e.test', 'outsider password');
  expect((await fg.api('POST', '/api/v1/orgs', { name: 'Elsewhere' }, outsiderToken)).status).toBe(201);

  const recordingUrl = `/api/v1/sessions/${sessionId}/recording`;
  const asViewer = await fetch(`${fg.url}${recordingUrl}`, {
    headers: { authorization: `Bearer ${viewerToken}` },
  });
  expect(asViewer.status).toBe(403);
  expect(await asViewer.text()).not.toContain('replay-42');
  const asOutsider = await fetch(`${fg.url}${recordingUrl}`, {
    headers: { authorization: `Bearer ${outsiderToken}` },
  });
  expect(asOutsider.status).toBe(404);
  expect(await asOutsider.text()).not.toContain('replay-42');
  // The outsider sees none of the session's audit trail either.
  expect(
    (await fg.api('GET', `/api/v1/audit?session=${sessionId}`, undefined, outsiderToken)).body.total,
  ).toBe(0);
  const owner = await fetch(`${fg.url}${recordingUrl}`, {
    headers: { authorization: `Bearer ${fg.adminToken}` },
  });
  expect(await owner.text()).toContain('replay-42');

  await fg.signIn(page, 'viewer@e2e.test', viewer.body.password);
  await page.goto(`${fg.url}/sessions/${sessionId}`);
  await expect(page.getByRole('alert')).toContainText('operators and above');
  await expect(page.getByTestId('replay-player')).toHaveCount(0);
  await expect(page.getByText('you see your own actions only')).toBeVisible();
  await inspectPage(page, 'session-replay-viewer');
});
