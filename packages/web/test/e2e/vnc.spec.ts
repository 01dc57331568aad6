import { startVncDisplay, type VncDisplay, vncToolsMissing } from '@fleetgate/server/test/vnc/vnc-display.ts';
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
 * VNC on the device page, in Debian's Chromium: noVNC through fleetgate to a real agent and a real VNC server on
 * the device's side (x11vnc on an Xvfb display painted a known colour), checked by the pixels of a screenshot;
 * the clipboard both ways, a password the VNC server asks for, the end of a session an administrator terminated, no VNC for a viewer, and
 * an offline device explained.
 */
test.describe.configure({ mode: 'serial' });

const missing = vncToolsMissing();
// CI (.ci/run sets CI=1) installs them: there, a missing one is a failure, never a skip.
if (missing && process.env.CI) throw new Error(`the VNC browser tests cannot run: ${missing}`);
if (missing) console.warn(`SKIPPED VNC browser tests: ${missing}`);
test.skip(!!missing, `the VNC browser tests need Xvfb, xsetroot, x11vnc and xclip: ${missing}`);

/** Dodger blue and a green, far from noVNC's dark background and from each other. */
const BLUE = { hex: '#1e90ff', rgb: [30, 144, 255] };
const RED = { hex: '#ff0000', rgb: [255, 0, 0] };
const GREEN = { hex: '#00c000', rgb: [0, 192, 0] };

let fg: Fleetgate;
let device: Device;
let uuid: string;
let open: VncDisplay;
let locked: VncDisplay;

test.beforeAll(async () => {
  open = await startVncDisplay({ color: BLUE.hex });
  locked = await startVncDisplay({ color: GREEN.hex, password: 'vnc-secret' });
  fg = await startFleetgate();
  device = await startDevice(fg, 'kiosk-pi', { allowedPorts: [22, open.port, locked.port] });
  uuid = device.uuid;
});

test.afterAll(async () => {
  await device?.stop();
  await fg?.stop();
  await open?.stop();
  await locked?.stop();
});

/** Opens the device's VNC tab and connects to `port`. */
async function connect(page: Page, port: number): Promise<void> {
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'VNC' }).click();
  await page.getByRole('textbox', { name: 'VNC port' }).fill(String(port));
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
}

/**
 * The colours at five points (the centre and near each corner) of a screenshot of noVNC's canvas, as the browser
 * decodes the PNG Playwright took: what a person looking at the page sees.
 */
async function screenColours(page: Page): Promise<number[][]> {
  const canvas = page.getByTestId('vnc-screen').locator('canvas');
  const png = (await canvas.screenshot()).toString('base64');
  return page.evaluate(async (base64) => {
    const image = new Image();
    image.src = `data:image/png;base64,${base64}`;
    await image.decode();
    const board = document.createElement('canvas');
    board.width = image.width;
    board.height = image.height;
    const context = board.getContext('2d');
    if (!context) throw new Error('no 2d context');
    context.drawImage(image, 0, 0);
    const { width: w, height: h } = image;
    return [
      [w / 2, h / 2],
      [w * 0.1, h * 0.1],
      [w * 0.9, h * 0.1],
      [w * 0.1, h * 0.9],
      [w * 0.9, h * 0.9],
    ].map(([x, y]) => [
      ...context.getImageData(Math.floor(x ?? 0), Math.floor(y ?? 0), 1, 1).data.slice(0, 3),
    ]);
  }, png);
}

/** True when every point is within a few levels of `rgb` (scaling blends nothing on a solid colour). */
const allAre = (colours: number[][], rgb: number[]) =>
  colours.every((c) => c.every((v, i) => Math.abs(v - (rgb[i] ?? 0)) <= 4));

test("the device's VNC screen shows in the browser, and follows what the device draws", async ({ page }) => {
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'VNC' }).click();
  // 5900 by default, off this device's allow-list: said so, and not offered.
  await expect(page.getByText("Port 5900 is not on this device's allow-list")).toBeVisible();
  await expect(page.getByRole('button', { name: 'Connect', exact: true })).toBeDisabled();
  await inspectPage(page, 'device-vnc-port-not-allowed');

  await fg.api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [22, open.port, locked.port] });
  await connect(page, open.port);
  await expect(page.getByText(`Connected to kiosk-pi, port ${open.port}`)).toBeVisible();
  await expect.poll(() => screenColours(page).then((c) => allAre(c, BLUE.rgb))).toBe(true);
  await inspectPage(page, 'device-vnc');

  open.paint(RED.hex);
  await expect.poll(() => screenColours(page).then((c) => allAre(c, RED.rgb))).toBe(true);
  open.paint(BLUE.hex);

  // Scaled to fit a smaller window, then at its own size (640×480) once scaling is off.
  const canvasSize = async () => {
    const box = await page.getByTestId('vnc-screen').locator('canvas').boundingBox();
    return [Math.round(box?.width ?? 0), Math.round(box?.height ?? 0)];
  };
  await page.setViewportSize({ width: 1000, height: 500 });
  await expect.poll(async () => (await canvasSize())[1]).toBeLessThan(480);
  await page.getByRole('switch', { name: 'Scale to fit' }).uncheck({ force: true });
  await expect.poll(canvasSize).toEqual([640, 480]);
  await page.getByRole('switch', { name: 'Scale to fit' }).check({ force: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  const sessions = await fg.api('GET', '/api/v1/sessions?surface=vnc');
  expect(sessions.body.items).toContainEqual(
    expect.objectContaining({ surface: 'vnc', port: open.port, live: true }),
  );
  await page.getByRole('button', { name: 'Disconnect' }).click();
  await expect(
    page.getByRole('tabpanel', { name: 'VNC' }).getByText('Disconnected', { exact: true }),
  ).toBeVisible();
});

test("the clipboard goes both ways: what the page sends reaches the device's, and what the device copies shows in the page", async ({
  page,
}) => {
  await fg.signIn(page);
  await connect(page, open.port);
  await expect(page.getByText(`Connected to kiosk-pi, port ${open.port}`)).toBeVisible();
  // Latin-1: RFB's cut text is ISO 8859-1 unless both ends speak the extended clipboard (x11vnc does not).
  await page.getByLabel('Clipboard').fill('sent from the browser: olé');
  await page.getByRole('button', { name: "Send to the device's clipboard" }).click();
  await expect.poll(() => open.clipboard()).toBe('sent from the browser: olé');
  // x11vnc sends the device's clipboard only from 15 s after a viewer connected (its sel_waittime).
  open.copy('copied on the device: grüße');
  await expect(page.getByLabel('Clipboard')).toHaveValue('copied on the device: grüße', { timeout: 30_000 });
  await page.getByRole('button', { name: 'Disconnect' }).click();
});

test('a VNC server that asks for a password gets it from a prompt, and a wrong one is said so', async ({
  page,
}) => {
  await fg.signIn(page);
  await connect(page, locked.port);
  await expect(page.getByText('The VNC server asks for a password')).toBeVisible();
  await inspectPage(page, 'device-vnc-password');
  await page.getByLabel('VNC password').fill('not the password');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(page.getByText('The VNC server refused the password')).toBeVisible();
  await expect(page.getByText('It said: password check failed!')).toBeVisible();
  await inspectPage(page, 'device-vnc-wrong-password');

  await page.getByRole('button', { name: 'Open a new session' }).click();
  await expect(page.getByText('The VNC server asks for a password')).toBeVisible();
  await page.getByLabel('VNC password').fill('vnc-secret');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(page.getByText(`Connected to kiosk-pi, port ${locked.port}`)).toBeVisible();
  await expect.poll(() => screenColours(page).then((c) => allAre(c, GREEN.rgb))).toBe(true);
});

test('an administrator ends the session and the viewer says so', async ({ page }) => {
  await fg.signIn(page);
  await connect(page, open.port);
  await expect(page.getByText(`Connected to kiosk-pi, port ${open.port}`)).toBeVisible();
  // The earlier tests' sessions have ended: the one live VNC session is this page's.
  let live: { id: string }[] = [];
  await expect
    .poll(async () => {
      const listed = await fg.api('GET', '/api/v1/sessions?surface=vnc');
      live = listed.body.items.filter((s: { live: boolean }) => s.live);
      return live.length;
    })
    .toBe(1);
  expect((await fg.api('POST', `/api/v1/sessions/${live[0]?.id}/terminate`)).status).toBe(200);
  await expect(page.getByText('Ended by an administrator')).toBeVisible();
  await expect(page.getByText(`Terminated by ${ADMIN_EMAIL}.`)).toBeVisible();
  await inspectPage(page, 'device-vnc-ended');
});

test('a viewer gets no VNC on the device page', async ({ page }) => {
  const added = await fg.api('POST', '/api/v1/orgs/1/members', { email: 'viewer@e2e.test', role: 'viewer' });
  expect(added.status).toBe(201);
  await fg.signIn(page, 'viewer@e2e.test', added.body.password);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await expect(page.getByRole('tab', { name: 'Sessions' })).toBeVisible();
  await expect(page.getByRole('tab', { name: 'VNC' })).toHaveCount(0);
});

test('a device that is offline gets an explanation instead of a screen', async ({ page }) => {
  await device.agent.stop();
  await expect
    .poll(async () => (await fg.api('GET', `/api/v1/devices/${uuid}`)).body?.status, { timeout: 30_000 })
    .toBe('offline');
  await fg.signIn(page);
  await connect(page, open.port);
  await expect(page.getByText('VNC could not be opened', { exact: true })).toBeVisible();
  await expect(page.getByText(/The device is offline/)).toBeVisible();
  await inspectPage(page, 'device-vnc-offline');
});
