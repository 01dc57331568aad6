import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { type Browser, expect, type Page, test } from '@playwright/test';
import {
  ADMIN_EMAIL,
  type Agent,
  type Fleetgate,
  inspectPage,
  screenshotDir,
  startAgent,
  startFleetgate,
} from './fleetgate.ts';

/**
 * The admin UI as a fleet admin uses it, in Debian's Chromium against a real server and real agents: one story,
 * in order (each step builds on the one before).
 */
test.describe.configure({ mode: 'serial' });

let fg: Fleetgate;
const agents: Agent[] = [];
let fleetId: number;
let provisioningKey: string;
let agentUuid: string;

test.beforeAll(async () => {
  fg = await startFleetgate();
});

test.afterAll(async () => {
  for (const agent of agents) await agent.stop();
  await fg?.stop();
});

/** Opens a page from the navigation bar, as a person would. */
async function goTo(page: Page, name: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name, exact: true }).click();
}

/** The devices table's row of a device, by uuid. */
const deviceRow = (page: Page, uuid: string) => page.locator(`tr[data-device="${uuid}"]`);

async function newPerson(browser: Browser, email: string, password: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await fg.signIn(page, email, password);
  return { context, page, token: await fg.login(email, password) };
}

test('signs in with a clear error first, holds the session only in an httpOnly cookie, and signs out', async ({
  page,
}) => {
  await page.goto(fg.url);
  await expect(page).toHaveURL(/\/sign-in/);
  await inspectPage(page, 'sign-in');
  await page.getByLabel('E-mail').fill(ADMIN_EMAIL);
  await page.getByRole('textbox', { name: 'Password' }).fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('invalid e-mail or password');

  await fg.signIn(page);
  const cookie = (await page.context().cookies()).find((c) => c.name === 'fleetgate_session');
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
  const scriptsSee = await page.evaluate(() => ({
    cookie: document.cookie,
    stored: JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
  }));
  expect(scriptsSee.cookie).not.toContain('fgs_');
  expect(scriptsSee.stored).not.toContain('fgs_');
  await inspectPage(page, 'dashboard-empty');

  await page.getByRole('button', { name: 'Account menu' }).click();
  await page.getByRole('menuitem', { name: 'Sign out' }).click();
  await expect(page.getByRole('status')).toContainText('You signed out.');
  expect((await page.request.get(`${fg.url}/api/v1/me`)).status()).toBe(401);
});

test('a fleet and a provisioning key made in the UI enroll a real agent, whose row turns online live; a variable set in the UI reaches its env file; it turns offline live when it stops', async ({
  page,
}) => {
  await fg.signIn(page);
  await goTo(page, 'Fleets');
  await expect(page.getByText('No fleets yet.')).toBeVisible();
  await inspectPage(page, 'fleets-empty');
  await page.getByRole('button', { name: 'New fleet' }).click();
  await page.getByRole('dialog').getByLabel('Name').fill('lobby-screens');
  await page.getByLabel('Description').fill('Screens in the lobbies');
  await page.getByRole('button', { name: 'Create fleet' }).click();
  await expect(page.getByRole('heading', { name: 'lobby-screens' })).toBeVisible();
  fleetId = Number(/\/fleets\/(\d+)/.exec(page.url())![1]);

  await page.getByLabel('Key name').fill('line-1');
  await page.getByLabel('Maximum uses').fill('10');
  await page.getByRole('button', { name: 'Create key' }).click();
  provisioningKey = (await page.getByTestId('provisioning-key').textContent())!.trim();
  expect(provisioningKey).toMatch(/^fgp_/);
  await inspectPage(page, 'provisioning-key-shown-once');
  await page.keyboard.press('Escape');
  await expect(page.getByRole('table', { name: 'Provisioning keys' })).toContainText('line-1');

  await goTo(page, 'Devices');
  await expect(page.getByText('No devices yet.')).toBeVisible();
  const agent = startAgent(fg.url, { provisioningKey }, 'lobby-1');
  agents.push(agent);
  agentUuid = await agent.uuid();
  // No reload from here on: the row appears, then turns online, from the server's live updates.
  await expect(deviceRow(page, agentUuid).locator('[data-status]')).toHaveAttribute('data-status', 'online');
  await inspectPage(page, 'devices');

  await page.getByRole('link', { name: 'lobby-1' }).click();
  await expect(page.getByRole('heading', { name: 'lobby-1' })).toBeVisible();
  await expect(page.getByText('Last state report')).toBeVisible();
  await inspectPage(page, 'device');

  await page.goto(`${fg.url}/fleets/${fleetId}`);
  const addVariable = page.getByRole('form', { name: 'Add a variable' });
  await addVariable.getByLabel('Name').fill('GREETING');
  await addVariable.getByLabel('Value').fill('hello from the UI');
  await addVariable.getByRole('button', { name: 'Add variable' }).click();
  await expect(page.locator('tr[data-variable="GREETING"]')).toContainText('hello from the UI');
  await expect
    .poll(() => (fs.existsSync(agent.envFile) ? fs.readFileSync(agent.envFile, 'utf8') : ''), {
      timeout: 20_000,
    })
    .toContain("GREETING='hello from the UI'");
  await inspectPage(page, 'fleet');

  await goTo(page, 'Devices');
  await expect(deviceRow(page, agentUuid).locator('[data-status]')).toHaveAttribute('data-status', 'online');
  await agent.stop();
  await expect(deviceRow(page, agentUuid).locator('[data-status]')).toHaveAttribute('data-status', 'offline');
});

test('a Mender-style device left pending is accepted from the queue into a fleet and comes online', async ({
  page,
}) => {
  const agent = startAgent(fg.url, { keyPair: { identity: { mac: '02:e2:e2:00:00:01' } } });
  agents.push(agent);
  await expect
    .poll(async () => (await fg.api('GET', '/api/v1/auth-sets?status=pending')).body.total, {
      timeout: 30_000,
    })
    .toBe(1);
  await fg.signIn(page);
  await goTo(page, 'Pending devices');
  const row = page
    .getByRole('table', { name: 'Pending devices' })
    .getByRole('row')
    .filter({ hasText: '02:e2:e2:00:00:01' });
  await expect(row).toBeVisible();
  await inspectPage(page, 'pending');
  await row.getByRole('checkbox').check();
  // A Mantine Select: its input and its option list both carry the label; the input comes first.
  await page.getByLabel('Accept into fleet').first().click();
  await page.getByRole('option', { name: 'lobby-screens' }).click();
  await page.getByRole('button', { name: /^Accept/ }).click();
  await expect(page.getByRole('dialog')).toContainText('1 of 1 handled: 1 done');
  await page.keyboard.press('Escape');

  const accepted = await fg.api('GET', '/api/v1/auth-sets?status=accepted');
  const uuid = accepted.body.items[0].deviceUuid as string;
  await goTo(page, 'Devices');
  // The agent asks again within a second of the acceptance, then opens its tunnel; a loaded CI machine has been
  // seen to take longer than the default 15 s. One cause found since: a list answer read before the connect was
  // written could land after the live event and undo it (api/live.ts now applies newer presence again; charts.spec
  // holds a list answer to show it). A failure still shows what the agent said.
  await expect(deviceRow(page, uuid).locator('[data-status]'))
    .toHaveAttribute('data-status', 'online', { timeout: 45_000 })
    .catch((error: Error) => {
      throw new Error(`${error.message}\nthe agent said:\n${agent.output()}`);
    });
  await expect(deviceRow(page, uuid)).toContainText('lobby-screens');
});

test('bulk-moves two devices to another fleet, with a result per device', async ({ page }) => {
  const spare = await fg.api('POST', '/api/v1/fleets', { orgId: 1, name: 'spare' });
  expect(spare.status).toBe(201);
  for (const name of ['kiosk-a', 'kiosk-b']) {
    const made = await fg.api('POST', '/api/v1/devices', { fleetId, name, deviceType: 'raspberrypi4-64' });
    expect(made.status).toBe(201);
  }
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices`);
  await page.getByLabel('Search').fill('kiosk');
  const table = page.getByRole('table', { name: 'Devices' });
  await expect(table.getByRole('row')).toHaveCount(3);
  await page.getByLabel('Select kiosk-a').check();
  await page.getByLabel('Select kiosk-b').check();
  await page.getByRole('button', { name: 'Move to fleet…' }).click();
  await page.getByRole('dialog').getByLabel('To fleet').first().click();
  await page.getByRole('option', { name: 'spare' }).click();
  await page.getByRole('button', { name: 'Move', exact: true }).click();
  const results = page.getByRole('dialog');
  await expect(results).toContainText('2 of 2 handled: 2 done');
  await expect(results).toContainText('moved to spare');
  await inspectPage(page, 'bulk-move-result');
  await page.keyboard.press('Escape');
  for (const name of ['kiosk-a', 'kiosk-b']) {
    await expect(table.getByRole('row').filter({ hasText: name })).toContainText('spare');
  }
  const check = await fg.api('GET', '/api/v1/devices?q=kiosk');
  expect(check.body.items.map((d: { fleetName: string }) => d.fleetName)).toEqual(['spare', 'spare']);
});

test('a viewer sees no write controls, and the API refuses the same writes', async ({ browser }) => {
  const added = await fg.api('POST', '/api/v1/orgs/1/members', {
    email: 'viewer@e2e.test',
    role: 'viewer',
    name: 'Vera Viewer',
  });
  expect(added.status, JSON.stringify(added.body)).toBe(201);
  const password = added.body.password as string;
  const viewer = await newPerson(browser, 'viewer@e2e.test', password);
  const { page } = viewer;

  await page.goto(`${fg.url}/fleets/${fleetId}`);
  await expect(page.getByRole('heading', { name: 'lobby-screens' })).toBeVisible();
  await expect(page.locator('tr[data-variable="GREETING"]')).toBeVisible();
  for (const control of ['Rename', 'Delete fleet', 'Add variable', 'Create key', 'Add tag', 'Change ports']) {
    await expect(page.getByRole('button', { name: control })).toHaveCount(0);
  }
  await inspectPage(page, 'fleet-as-viewer');
  await page.goto(`${fg.url}/devices/${agentUuid}`);
  await expect(page.getByRole('heading', { name: 'lobby-1' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Edit' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Decommission' })).toHaveCount(0);
  await page.goto(`${fg.url}/fleets`);
  await expect(page.getByRole('button', { name: 'New fleet' })).toHaveCount(0);

  // What the UI hides, the server refuses.
  const rename = await fg.api('PATCH', `/api/v1/fleets/${fleetId}`, { name: 'renamed' }, viewer.token);
  expect(rename.status).toBe(403);
  const variable = await fg.api(
    'PUT',
    `/api/v1/fleets/${fleetId}/variables/GREETING`,
    { value: 'from a viewer' },
    viewer.token,
  );
  expect(variable.status).toBe(403);
  const decommission = await fg.api(
    'POST',
    `/api/v1/devices/${agentUuid}/decommission`,
    undefined,
    viewer.token,
  );
  expect(decommission.status).toBe(403);
  // Nor does the browser's own cookie get further than the token.
  const viaCookie = await page.request.patch(`${fg.url}/api/v1/fleets/${fleetId}`, {
    data: { name: 'renamed' },
    headers: { origin: fg.url },
  });
  expect(viaCookie.status()).toBe(403);
  await viewer.context.close();
});

test("a person of another organization sees none of this organization's fleets or devices", async ({
  browser,
}) => {
  const org = await fg.api('POST', '/api/v1/orgs', { name: 'Beta' });
  expect(org.status, JSON.stringify(org.body)).toBe(201);
  const added = await fg.api('POST', `/api/v1/orgs/${org.body.id}/members`, {
    email: 'beta@e2e.test',
    role: 'owner',
  });
  expect(added.status, JSON.stringify(added.body)).toBe(201);
  // The server administrator made Beta and is its owner too; Beta's own owner is only in Beta.
  const beta = await newPerson(browser, 'beta@e2e.test', added.body.password as string);
  const { page } = beta;
  await page.goto(`${fg.url}/devices`);
  await expect(page.getByText('No devices yet.')).toBeVisible();
  await page.goto(`${fg.url}/fleets`);
  await expect(page.getByText('No fleets yet.')).toBeVisible();
  await expect(page.getByText('lobby-screens')).toHaveCount(0);
  await page.goto(`${fg.url}/devices/${agentUuid}`);
  await expect(page.getByRole('alert')).toContainText('not found');
  expect((await fg.api('GET', `/api/v1/devices/${agentUuid}`, undefined, beta.token)).status).toBe(404);
  expect((await fg.api('GET', `/api/v1/fleets/${fleetId}`, undefined, beta.token)).status).toBe(404);
  await beta.context.close();
});

test('a page of another origin cannot make a change with the session cookie', async ({ page }) => {
  await fg.signIn(page);
  // Another origin on the same host: the browser sends the SameSite cookie (ports do not make sites), so only
  // the server's origin check stands between that page and a write.
  const evil = http.createServer((_request, response) => {
    response.setHeader('content-type', 'text/html');
    response.end(`<!doctype html><html lang="en"><title>evil</title><body>
      <form id="f" method="POST" action="${fg.url}/api/v1/fleets" enctype="text/plain">
        <input name='{"orgId":1,"name":"evil","x":"' value='"}'>
      </form>
      <script>document.getElementById('f').submit()</script></body></html>`);
  });
  await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
  const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
  const refused = page.waitForResponse(
    (r) => r.url().endsWith('/api/v1/fleets') && r.request().method() === 'POST',
  );
  await page.goto(evilUrl);
  const answer = await refused;
  expect(answer.status()).toBe(403);
  expect(await answer.text()).toContain('cross-site request refused');
  evil.close();
  // The same with a script's request naming another origin.
  const scripted = await page.request.post(`${fg.url}/api/v1/fleets`, {
    data: { orgId: 1, name: 'evil' },
    headers: { origin: 'http://evil.example' },
  });
  expect(scripted.status()).toBe(403);
  const fleets = await fg.api('GET', '/api/v1/fleets?orgId=1');
  expect(fleets.body.items.map((f: { name: string }) => f.name)).not.toContain('evil');
});

test('on a phone-sized screen every page fits its width, with the navigation behind a button', async ({
  page,
}) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await fg.signIn(page);
  for (const [name, url] of [
    ['dashboard', '/'],
    ['devices', '/devices'],
    ['device', `/devices/${agentUuid}`],
    ['fleets', '/fleets'],
    ['pending', '/pending'],
    ['sessions', '/sessions'],
    ['audit', '/audit'],
  ] as const) {
    await page.goto(`${fg.url}${url}`);
    await expect(page.getByRole('heading', { level: 2 }).first()).toBeVisible();
    await inspectPage(page, `phone-${name}`);
    // Wide tables scroll inside their own box; the page itself never scrolls sideways.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${url} is wider than the screen`).toBeLessThanOrEqual(0);
  }
  // The header keeps the account menu (and its sign-out) on the screen; the pages are one button away.
  await expect(page.getByRole('button', { name: 'Account menu' })).toBeInViewport();
  await expect(page.getByRole('button', { name: /Switch to (dark|light) mode/ })).toBeInViewport();
  const fleetsLink = page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Fleets' });
  await expect(fleetsLink).not.toBeInViewport();
  await page.getByRole('button', { name: 'Navigation' }).click();
  await fleetsLink.click();
  await expect(page).toHaveURL(/\/fleets$/);
  await page.getByRole('button', { name: 'Account menu' }).click();
  await expect(page.getByRole('menuitem', { name: 'Sign out' })).toBeInViewport();
});

test('every page passes an accessibility scan and leaves a screenshot', async ({ page }) => {
  await fg.signIn(page);
  for (const [name, url] of [
    ['dashboard', '/'],
    ['fleets', '/fleets'],
    ['sessions', '/sessions'],
    ['people', '/people'],
    ['audit', '/audit'],
    ['settings', '/settings'],
    ['account', '/account'],
  ] as const) {
    await page.goto(`${fg.url}${url}`);
    await expect(page.getByRole('heading', { level: 2 }).first()).toBeVisible();
    await inspectPage(page, name);
  }
  await page.getByRole('button', { name: /Switch to dark mode/ }).click();
  await page.goto(`${fg.url}/devices`);
  await expect(deviceRow(page, agentUuid)).toBeVisible();
  await inspectPage(page, 'devices-dark');
  // The README shows what a new user sees: made here, never by hand.
  if (process.env.FLEETGATE_DOCS_SCREENSHOTS) {
    const docs = path.resolve(screenshotDir, '../../docs');
    fs.mkdirSync(docs, { recursive: true });
    for (const name of ['dashboard', 'devices', 'fleet']) {
      fs.copyFileSync(path.join(screenshotDir, `${name}.png`), path.join(docs, `ui-${name}.png`));
    }
  }
});
