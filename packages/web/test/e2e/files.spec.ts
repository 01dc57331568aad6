import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import {
  type Device,
  type Fleetgate,
  inspectPage,
  screenshotDir,
  startDevice,
  startFleetgate,
} from './fleetgate.ts';

/**
 * File transfer on the device page, in Debian's Chromium over plain HTTP on 127.0.0.1, to a real agent writing real
 * files: a 5 MB upload through the Files tab with its progress and the SHA-256 the device wrote, downloaded back
 * through the browser with the same SHA-256; a refusal shown with its reason; no Files tab for a viewer.
 */
test.describe.configure({ mode: 'serial' });

let fg: Fleetgate;
let device: Device;
let uuid: string;
let work: string;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The server's limit here (it reads its environment, which this process passes on): above the 5 MB file. */
const LIMIT = 8_000_000;

test.beforeAll(async () => {
  process.env.FLEETGATE_FILE_TRANSFER_MAX_BYTES = String(LIMIT);
  fg = await startFleetgate();
  delete process.env.FLEETGATE_FILE_TRANSFER_MAX_BYTES;
  device = await startDevice(fg, 'files-pi');
  uuid = device.uuid;
  // The device's files and the laptop's, both in the device's home.
  work = device.home;
});

test.afterAll(async () => {
  await device?.stop();
  await fg?.stop();
});

test('a 5 MB file uploaded through the Files tab downloads back with the same SHA-256', async ({ page }) => {
  const bytes = randomBytes(5 * 1000 * 1000);
  const local = path.join(work, 'laptop-image.bin');
  fs.writeFileSync(local, bytes);
  const deviceDir = path.join(work, 'device');
  fs.mkdirSync(deviceDir);

  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Files' }).click();
  await page.getByLabel('Destination path on the device').fill(`${deviceDir}/`);
  const chooser = page.waitForEvent('filechooser');
  await page.getByRole('button', { name: 'File' }).click();
  await (await chooser).setFiles(local);
  await expect(page.getByText(`laptop-image.bin (4.8 MiB) → ${deviceDir}/laptop-image.bin`)).toBeVisible();
  // A slow link (2 MB/s up), so that the upload lasts and its progress shows.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: 2_000_000,
  });
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page.getByRole('progressbar', { name: 'Upload progress' })).toBeVisible();
  await expect(page.getByText(/^\d+% — [\d.]+ (KiB|MiB) of 4\.8 MiB$/)).toBeVisible();
  fs.mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, 'device-files-uploading.png'), fullPage: true });
  await expect(page.getByRole('status').getByText('Uploaded')).toBeVisible({ timeout: 60_000 });
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: -1,
  });
  await expect(page.getByTestId('uploaded-sha256')).toHaveText(sha256(bytes));
  expect(sha256(fs.readFileSync(path.join(deviceDir, 'laptop-image.bin')))).toBe(sha256(bytes));
  await inspectPage(page, 'device-files-uploaded');

  await page.getByLabel('Path of the file on the device').fill(`${deviceDir}/laptop-image.bin`);
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download' }).click();
  const saved = await (await download).path();
  expect((await download).suggestedFilename()).toBe('laptop-image.bin');
  expect(sha256(fs.readFileSync(saved))).toBe(sha256(bytes));
});

test('an upload the device refuses says why, and leaves nothing', async ({ page }) => {
  fs.writeFileSync(path.join(work, 'note.txt'), 'hello');
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Files' }).click();
  await page.getByLabel('Destination path on the device').fill(`${work}/no/such/dir/`);
  const chooser = page.waitForEvent('filechooser');
  await page.getByRole('button', { name: 'File' }).click();
  await (await chooser).setFiles(path.join(work, 'note.txt'));
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page.getByText('Upload failed')).toBeVisible();
  await expect(page.getByText(`directory ${work}/no/such/dir does not exist: create it first`)).toBeVisible();
  await inspectPage(page, 'device-files-refused');
});

test("a file over the server's limit is refused before it is sent, saying what to do", async ({ page }) => {
  const local = path.join(work, 'too-big.bin');
  fs.writeFileSync(local, Buffer.alloc(LIMIT + 1));
  await fg.signIn(page);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await page.getByRole('tab', { name: 'Files' }).click();
  await expect(page.getByText('This server takes files of up to 7.6 MiB.')).toBeVisible();
  const chooser = page.waitForEvent('filechooser');
  await page.getByRole('button', { name: 'File' }).click();
  await (await chooser).setFiles(local);
  await expect(
    page.getByText(
      /too-big\.bin is 8000001 bytes \(7\.6 MiB\), more than this server's limit of 8000000 bytes \(7\.6 MiB\) per file/,
    ),
  ).toBeVisible();
  await expect(page.getByRole('button', { name: 'Upload' })).toBeDisabled();
  await inspectPage(page, 'device-files-too-large');
});

test('a viewer gets no Files tab', async ({ page }) => {
  const viewer = await fg.api('POST', '/api/v1/orgs/1/members', {
    email: 'viewer@files.test',
    role: 'viewer',
  });
  expect(viewer.status).toBe(201);
  await fg.signIn(page, 'viewer@files.test', viewer.body.password);
  await page.goto(`${fg.url}/devices/${uuid}`);
  await expect(page.getByRole('tab', { name: 'Variables' })).toBeVisible();
  await expect(page.getByRole('tab', { name: 'Files' })).toHaveCount(0);
});
