import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect, type Page, test } from '@playwright/test';
import { WebSocketServer } from 'ws';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  type Device,
  type Fleetgate,
  inspectPage,
  screenshotDir,
  startDevice,
  startFleetgate,
} from './fleetgate.ts';

/**
 * Device web pages in Debian's Chromium: a real `fleetgate serve` on 127.0.0.1 and a real agent, whose device
 * serves `python3 -m http.server` on one port and a page with a WebSocket echo on another. The page opens from
 * the device page in a new tab, on its own `*.localhost` origin (Chromium resolves those to loopback), and there
 * it can neither see fleetgate's session cookie nor call fleetgate's API as the person.
 */
test.describe.configure({ mode: 'serial' });

let fg: Fleetgate;
let device: Device;
let uuid: string;
let python: ChildProcess;
let echoApp: http.Server;
let echoSockets: WebSocketServer;
const site = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-e2e-site-'));
const ports = { python: 0, echo: 0 };

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const echoPage = `<!doctype html><html lang="en"><head><title>Echo panel</title></head><body>
<h1>Echo panel</h1><p id="echo">waiting</p>
<script>
const ws = new WebSocket('ws://' + location.host + '/socket');
ws.onmessage = (event) => { document.getElementById('echo').textContent = event.data; };
ws.onopen = () => ws.send('ping from the browser');
</script></body></html>`;

test.beforeAll(async () => {
  ports.python = await freePort();
  ports.echo = await freePort();
  fs.writeFileSync(
    path.join(site, 'index.html'),
    '<!doctype html><html lang="en"><head><title>Workbench panel</title></head><body><h1>Hello from the device</h1>' +
      '<p>served by python3 -m http.server</p></body></html>',
  );
  python = spawn('/usr/bin/python3', ['-m', 'http.server', String(ports.python), '--bind', '127.0.0.1'], {
    cwd: site,
    stdio: 'ignore',
  });
  echoApp = http.createServer((_request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    response.end(echoPage);
  });
  echoSockets = new WebSocketServer({ server: echoApp });
  echoSockets.on('connection', (ws) => ws.on('message', (data) => ws.send(`echo: ${data}`)));
  await new Promise<void>((resolve) => echoApp.listen(ports.echo, '127.0.0.1', resolve));

  fg = await startFleetgate();
  device = await startDevice(fg, 'kiosk-7', { allowedPorts: [22, ports.python, ports.echo] });
  uuid = device.uuid;
  const set = await fg.api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, {
    ports: [ports.python, ports.echo],
  });
  expect(set.status).toBe(200);
});

test.afterAll(async () => {
  python?.kill();
  echoSockets?.close();
  echoApp?.close();
  await device?.stop();
  await fg?.stop();
  fs.rmSync(site, { recursive: true, force: true });
});

/**
 * fleetgate's UI as `localhost`, not 127.0.0.1: its session cookie then belongs to `localhost`, the parent of every
 * device origin (`*.localhost`), the closest a device page can get to it.
 */
const ui = () => fg.url.replace('127.0.0.1', 'localhost');

/** Clicks "open" for a port on the device page's Web pages tab; answers the new tab and the link it was sent to. */
async function openWebPage(page: Page, port: number): Promise<{ tab: Page; link: string }> {
  const granted = page.waitForResponse(
    (response) => response.url().endsWith('/web-sessions') && response.request().method() === 'POST',
  );
  const opened = page.context().waitForEvent('page');
  await page.getByRole('button', { name: `Open the web page of port ${port}` }).click();
  const [tab, answer] = await Promise.all([opened, granted]);
  expect(answer.status()).toBe(201);
  const link = ((await answer.json()) as { url: string }).url;
  await tab.waitForLoadState();
  return { tab, link };
}

test("a device's python3 -m http.server page opens in a new tab on its own origin, apart from fleetgate", async ({
  page,
}) => {
  await fg.signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD, ui());
  await page.goto(`${ui()}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Web pages' }).click();
  await expect(page.getByRole('button', { name: `Open the web page of port ${ports.python}` })).toBeVisible();
  await inspectPage(page, 'device-web-pages-tab');

  const { tab, link } = await openWebPage(page, ports.python);
  await expect(tab.getByRole('heading', { name: 'Hello from the device' })).toBeVisible();
  expect(new URL(tab.url()).host).toBe(`${ports.python}-${uuid}.localhost:${new URL(fg.url).port}`);
  expect(new URL(tab.url()).pathname).toBe('/');
  fs.mkdirSync(screenshotDir, { recursive: true });
  await tab.screenshot({ path: path.join(screenshotDir, 'device-web-page.png') });

  // The device's page cannot see fleetgate's session cookie, nor its own (httpOnly), nor reach back to fleetgate.
  expect((await page.context().cookies(ui())).map((c) => c.name)).toContain('fleetgate_session');
  const cookies = await tab.evaluate(() => document.cookie);
  expect(cookies).not.toContain('fleetgate_session');
  expect(cookies).not.toContain('fleetgate_device_web');
  expect(await tab.evaluate(() => window.opener === null)).toBe(true);
  // /api/v1/me on the device origin is the device's own path: python answers 404, nobody's account.
  const me = await tab.evaluate(async () => {
    const answer = await fetch('/api/v1/me');
    return { status: answer.status, text: await answer.text() };
  });
  expect(me.status).toBe(404);
  expect(me.text).not.toContain(ADMIN_EMAIL);
  // Nor can it call fleetgate's API as the person, cookie included: the browser keeps the answer from it.
  const fleetgateApi = await tab.evaluate(async (url) => {
    try {
      const answer = await fetch(`${url}/api/v1/me`, { credentials: 'include' });
      return `read ${answer.status}: ${await answer.text()}`;
    } catch (error) {
      return `refused: ${(error as Error).name}`;
    }
  }, ui());
  expect(fleetgateApi).toBe('refused: TypeError');
  // A write sent blind (no-cors, the person's cookie attached: *.localhost is the same site) changes nothing.
  await tab.evaluate(async (url) => {
    await fetch(`${url}/api/v1/api-keys`, {
      method: 'POST',
      mode: 'no-cors',
      credentials: 'include',
      body: JSON.stringify({ name: 'taken-by-a-device-page' }),
    }).catch(() => undefined);
  }, ui());
  const keys = await fg.api('GET', '/api/v1/api-keys');
  expect(JSON.stringify(keys.body)).not.toContain('taken-by-a-device-page');

  // The link worked once: opened again, it is refused with a page that says what to do.
  const again = await page.context().newPage();
  const answer = await again.goto(link);
  expect(answer?.status()).toBe(403);
  await expect(again.getByRole('heading', { name: 'Refused' })).toBeVisible();
  await expect(again.getByText('already used or has expired')).toBeVisible();
  await again.screenshot({ path: path.join(screenshotDir, 'device-web-used-grant.png') });
  await again.close();

  // The tab's connections to the device are sessions, listed with surface "web".
  const sessions = await fg.api('GET', `/api/v1/sessions?surface=web&device=${uuid}`);
  expect(sessions.body.items.length).toBeGreaterThan(0);
  await tab.close();
});

test("a device page's WebSocket reaches the device's echo and back", async ({ page }) => {
  await fg.signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD, ui());
  await page.goto(`${ui()}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Web pages' }).click();
  const { tab } = await openWebPage(page, ports.echo);
  await expect(tab.getByRole('heading', { name: 'Echo panel' })).toBeVisible();
  await expect(tab.locator('#echo')).toHaveText('echo: ping from the browser');
  await tab.close();
});
