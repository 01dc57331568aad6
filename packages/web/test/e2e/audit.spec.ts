import { expect, type Page, test } from '@playwright/test';
import { ADMIN_EMAIL, ADMIN_PASSWORD, type Fleetgate, inspectPage, startFleetgate } from './fleetgate.ts';

/**
 * The audit page's server-wide events: a failed sign-in is recorded for no organization, so only a server
 * administrator finds it, by switching the page to the server-wide events; an organization's admin has no such
 * switch.
 */
test.describe.configure({ mode: 'serial' });

let fg: Fleetgate;

test.beforeAll(async () => {
  fg = await startFleetgate();
});

test.afterAll(async () => {
  await fg?.stop();
});

test("a server administrator finds a failed sign-in by switching to the server-wide events; an organization's admin has no such switch", async ({
  page,
  browser,
}) => {
  const email = 'org-admin@e2e.test';
  const added = await fg.api('POST', '/api/v1/orgs/1/members', { email, role: 'admin' });
  expect(added.status).toBe(201);
  const wrong = await fg.api('POST', '/api/v1/auth/login', { email, password: 'a wrong guess' }, '');
  expect(wrong.status).toBe(401);
  const failedSignIn = (on: Page) =>
    on
      .locator('tr[data-event]')
      .filter({ hasText: email })
      .filter({ hasText: 'auth.login' })
      .filter({ has: on.locator('[data-outcome="failure"]') });

  await fg.signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await page.goto(`${fg.url}/audit`);
  await expect(page.getByRole('heading', { name: 'Audit log', exact: true })).toBeVisible();
  await expect(page.locator('tr[data-event]').first()).toBeVisible();
  await expect(failedSignIn(page)).toHaveCount(0);
  await page.getByRole('switch', { name: 'Server-wide events' }).click();
  await expect(page.getByRole('heading', { name: 'Audit log: server-wide events' })).toBeVisible();
  await expect(failedSignIn(page)).toHaveCount(1);
  await inspectPage(page, 'audit-server-wide');

  const context = await browser.newContext();
  const orgAdmin = await context.newPage();
  await fg.signIn(orgAdmin, email, added.body.password);
  await orgAdmin.goto(`${fg.url}/audit`);
  await expect(orgAdmin.getByRole('heading', { name: 'Audit log', exact: true })).toBeVisible();
  await expect(orgAdmin.locator('tr[data-event]').first()).toBeVisible();
  await expect(orgAdmin.getByRole('switch', { name: 'Server-wide events' })).toHaveCount(0);
  await expect(failedSignIn(orgAdmin)).toHaveCount(0);
  await context.close();
});
