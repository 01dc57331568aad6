import { generateKeyPairSync } from 'node:crypto';
import { expect, test } from '@playwright/test';
import { type Device, type Fleetgate, inspectPage, startDevice, startFleetgate } from './fleetgate.ts';

/**
 * The dashboard's figures and the device page's history, drawn with uPlot from what real agents did, and the
 * pending queue's CSV upload of preauthorizations.
 */
test.describe.configure({ mode: 'serial' });

let fg: Fleetgate;
let device: Device | undefined;

test.beforeAll(async () => {
  fg = await startFleetgate();
});

test.afterAll(async () => {
  await device?.stop();
  await fg?.stop();
});

test("the dashboard counts a real agent's connect in its 24-hour chart", async ({ page }) => {
  device = await startDevice(fg, 'chart-1');
  await fg.signIn(page);
  await expect(page.getByTestId('connection-totals')).toHaveText('1 connect, 0 disconnects');
  const chart = page.getByRole('img', { name: /Connects and disconnects per hour/ });
  await expect(chart).toHaveAccessibleName(/1 connects, 0 disconnects/);
  await expect(chart.locator('canvas')).toBeVisible();
  await expect(page.getByLabel('1 online devices')).toBeVisible();
  await expect(page.getByTestId('failed-device-authentications')).toHaveText(
    '0 failed device authentications in 24 h',
  );
  // The fleet's row counts its online device.
  const fleetRow = page.getByRole('row').filter({ hasText: 'chart-1-fleet' });
  await expect(fleetRow.getByRole('cell').nth(1)).toHaveText('1');
  await inspectPage(page, 'dashboard-chart');
  // Dark: the chart is drawn again in the page's colours.
  await page.getByRole('button', { name: /Switch to dark mode/ }).click();
  await expect(chart.locator('canvas')).toBeVisible();
  await inspectPage(page, 'dashboard-chart-dark');
});

test("the device page charts a real agent's state reports over time", async ({ page }) => {
  const uuid = device!.uuid;
  // The agent reports its state on connect; presence writes it (and the minute's sample) within its batch.
  await expect
    .poll(async () => (await fg.api('GET', `/api/v1/devices/${uuid}/state-history`)).body.items.length, {
      message: `no state sample was kept:\n${device!.agent.output()}`,
    })
    .toBeGreaterThan(0);
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await expect(page.getByRole('heading', { name: 'State over time' })).toBeVisible();
  await expect(page.getByTestId('state-samples')).toHaveText(/^\d+ samples?$/);
  const memory = page.getByRole('img', { name: /^Memory over time, \d+ samples?$/ });
  await expect(memory.locator('canvas')).toBeVisible();
  // The chart holds the agent's figure: uPlot's legend shows the last value when no pointer is over it.
  const sample = (await fg.api('GET', `/api/v1/devices/${uuid}/state-history`)).body.items[0];
  expect(sample.memory.totalBytes).toBeGreaterThan(0);
  await page.getByText('1 hour', { exact: true }).click();
  await expect(page.getByRole('radio', { name: '1 hour' })).toBeChecked();
  await expect(memory.locator('canvas')).toBeVisible();
  await inspectPage(page, 'device-state-history');
});

test('a device going offline while the devices list is being fetched shows offline, not the older answer', async ({
  page,
}) => {
  const uuid = device!.uuid;
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices`);
  const status = page.locator(`tr[data-device="${uuid}"] [data-status]`);
  await expect(status).toHaveAttribute('data-status', 'online');
  // The next answer of the list is read at once but held for 3 s: the agent stops meanwhile, and its presence
  // event reaches the page before the older answer does.
  let intercepted!: () => void;
  const held = new Promise<void>((resolve) => (intercepted = resolve));
  await page.route(/\/api\/v1\/devices\?/, async (route) => {
    const response = await route.fetch();
    intercepted();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await route.fulfill({ response }).catch(() => undefined);
  });
  // Any change in the organization makes the pages on screen fetch again.
  const renamed = await fg.api('PATCH', `/api/v1/fleets/${device!.fleetId}`, { name: 'chart-1-renamed' });
  expect(renamed.status).toBe(200);
  await held;
  await device!.agent.stop();
  await expect(status).toHaveAttribute('data-status', 'offline');
  // The held answer (online, read before the agent stopped) has landed since: the row stays offline.
  await expect(page.locator(`tr[data-device="${uuid}"]`)).toContainText('chart-1-renamed', {
    timeout: 10_000,
  });
  await expect(status).toHaveAttribute('data-status', 'offline');
  await page.unroute(/\/api\/v1\/devices\?/);
});

test('a CSV of preauthorizations with one good and one bad row gives one preauthorized device and one clear error', async ({
  page,
}) => {
  const fleet = await fg.api('POST', '/api/v1/fleets', { orgId: 1, name: 'csv-fleet' });
  expect(fleet.status).toBe(201);
  const publicKey = generateKeyPairSync('ed25519')
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();
  const csv = [
    'identity,public_key,name',
    `"{""serial"":""CSV-1""}","${publicKey.trim()}",csv-good`,
    `"{""serial"":""CSV-2""}",not a public key,csv-bad`,
  ].join('\n');
  await fg.signIn(page);
  await page.goto(`${fg.url}/pending`);
  await page.getByRole('button', { name: 'Upload a CSV…' }).click();
  const form = page.getByRole('dialog', { name: 'Preauthorize devices from a CSV file' });
  await form.getByLabel('Fleet').first().click();
  await page.getByRole('option', { name: 'csv-fleet' }).click();
  await form.locator('input[type="file"]').setInputFiles({
    name: 'devices.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(csv),
  });
  await form.getByRole('button', { name: 'Upload and preauthorize' }).click();
  const results = page.getByRole('dialog', { name: /Preauthorize 2 devices from devices.csv/ });
  await expect(results).toContainText('2 of 2 handled: 1 done, 1 failed');
  await expect(results.getByRole('progressbar')).toHaveAttribute('aria-valuenow', '100');
  const good = results.getByRole('row').filter({ hasText: 'serial=CSV-1' });
  await expect(good).toContainText('done');
  await expect(good).toContainText('preauthorized as csv-good');
  const bad = results.getByRole('row').filter({ hasText: 'serial=CSV-2' });
  await expect(bad).toContainText('failed');
  await expect(bad).toContainText(/public key/i);
  await inspectPage(page, 'pending-csv-result');
  const preauthorized = await fg.api('GET', '/api/v1/auth-sets?status=preauthorized');
  expect(preauthorized.body.items.map((a: { identity: unknown }) => a.identity)).toEqual([
    { serial: 'CSV-1' },
  ]);
});
