import { expect, type Page, test } from '@playwright/test';
import { type Device, type Fleetgate, inspectPage, startDevice, startFleetgate } from './fleetgate.ts';

/**
 * Remote diagnostics on the device page, in Debian's Chromium, against a real `fleetgate serve` and a real
 * `fleetgate-agent`: an operator runs them and reads the results, picks an earlier run from the history, sees a
 * check's details; an offline device cannot be asked; a viewer has no Diagnostics tab.
 */
test.describe.configure({ mode: 'serial' });

let fg: Fleetgate;
let device: Device;
let uuid: string;
let offlineUuid: string;
const operator = { email: 'operator@e2e.test', password: '' };
const viewer = { email: 'viewer@e2e.test', password: '' };

test.beforeAll(async () => {
  fg = await startFleetgate();
  device = await startDevice(fg, 'field-gateway');
  uuid = device.uuid;
  const offline = await fg.api('POST', '/api/v1/devices', {
    fleetId: device.fleetId,
    name: 'cold-spare',
    deviceType: 'generic-amd64',
  });
  expect(offline.status, JSON.stringify(offline.body)).toBe(201);
  offlineUuid = offline.body.uuid;
  for (const [person, role] of [
    [operator, 'operator'],
    [viewer, 'viewer'],
  ] as const) {
    const member = await fg.api('POST', '/api/v1/orgs/1/members', { email: person.email, role });
    expect(member.status).toBe(201);
    person.password = member.body.password;
  }
});

test.afterAll(async () => {
  await device?.stop();
  await fg?.stop();
});

const checkRow = (page: Page, id: string) => page.locator(`[data-check="${id}"]`);

test('an operator runs diagnostics from the device page and sees every check with its status', async ({
  page,
}) => {
  await fg.signIn(page, operator.email, operator.password);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Diagnostics' }).click();
  await expect(page.getByText('No diagnostics have been run on this device yet.')).toBeVisible();

  await page.getByRole('button', { name: 'Run diagnostics' }).click();
  const table = page.getByRole('table', { name: 'Diagnostics' });
  await expect(table).toBeVisible();
  await expect(table.locator('tbody > tr')).toHaveCount(10);
  for (const title of [
    'Disk usage',
    'Memory',
    'Load',
    'Time synchronization',
    "DNS: the server's name",
    'TCP: the server',
    'The agent and its tunnel',
    'Network interfaces',
    'Failed systemd units',
    'Recent kernel messages',
  ]) {
    await expect(table.getByRole('cell', { name: title, exact: true })).toBeVisible();
  }
  // This server is reachable from the device: its TCP check succeeds, with what it measured.
  await expect(checkRow(page, 'tcp').locator('[data-check-status]')).toHaveAttribute(
    'data-check-status',
    'ok',
  );
  await expect(checkRow(page, 'tcp')).toContainText(/connected to 127\.0\.0\.1:\d+ in \d+ ms/);
  await expect(checkRow(page, 'agent').locator('[data-check-status]')).toHaveAttribute(
    'data-check-status',
    'ok',
  );
  await expect(page.getByText(`by ${operator.email}`)).toBeVisible();

  await page.getByRole('button', { name: 'Show the details of Network interfaces' }).click();
  await expect(page.getByRole('rowheader', { name: 'interfaces' })).toBeVisible();
  await expect(page.getByRole('cell', { name: 'lo', exact: true })).toBeVisible();
  await inspectPage(page, 'device-diagnostics');
});

test('a second run joins the history, and an earlier run can be picked again', async ({ page }) => {
  await fg.signIn(page, operator.email, operator.password);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Diagnostics' }).click();
  const first = await page.locator('[data-run]').getAttribute('data-run');
  await page.getByRole('button', { name: 'Run diagnostics' }).click();
  await expect(page.locator('[data-run]')).not.toHaveAttribute('data-run', first!);
  const second = await page.locator('[data-run]').getAttribute('data-run');

  // A Mantine Select: its input and its option list both carry the label; the input comes first.
  await page.getByLabel('Run shown').first().click();
  const options = page.getByRole('option');
  await expect(options).toHaveCount(2);
  await expect(options.first()).toContainText('Latest:');
  await options.nth(1).click();
  await expect(page.locator('[data-run]')).toHaveAttribute('data-run', first!);
  expect(first).not.toBe(second);
  await expect(page.getByRole('table', { name: 'Diagnostics' }).locator('tbody > tr')).toHaveCount(10);
});

test('an offline device cannot be asked, and says why', async ({ page }) => {
  await fg.signIn(page, operator.email, operator.password);
  await page.goto(`${fg.url}/devices/${offlineUuid}`);
  await page.getByRole('tab', { name: 'Diagnostics' }).click();
  await expect(page.getByRole('button', { name: 'Run diagnostics' })).toBeDisabled();
  await expect(
    page.getByText(/cold-spare is never-connected: diagnostics run only on a device that is online/),
  ).toBeVisible();
  await inspectPage(page, 'device-diagnostics-offline');
});

test('a viewer has no Diagnostics tab', async ({ page }) => {
  await fg.signIn(page, viewer.email, viewer.password);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await expect(page.getByRole('tab', { name: 'Variables' })).toBeVisible();
  await expect(page.getByRole('tab', { name: 'Diagnostics' })).toHaveCount(0);
});
