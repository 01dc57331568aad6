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
});
