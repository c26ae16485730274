/**
 * The dashboard (`/ui`) in Chromium against a real server (`boxrun serve`, or the
 * `jupyter lab` of global-setup.ts at `/boxrun/ui`): resource meters checked against
 * `/v1/info` and the boxes, the Disk column, a box's exec history with its output,
 * create / stop / start / remove, and the token kept out of the page and its requests.
 */
import { expect, test } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

import { boxName, boxRow, call, openDashboard, runExec, target } from './dashboard';
import { ARTIFACTS } from './playwright.config';

const IMAGE = 'local/debian';
const made: string[] = [];

test.afterAll(async () => {
  for (const id of made) {
    await fetch(`${target().base}v1/boxes/${id}?force=true`, {
      method: 'DELETE',
      headers: { Authorization: `token ${target().token}` }
    });
  }
});

test('meters, the Disk column and a box exec history with its output', async ({ page }) => {
  const a = await call('POST', '/boxes', { image: IMAGE, name: boxName('dash-a'), cpu: 1, memory_mb: 256, disk_size_gb: 2 }, 201);
  made.push(a.id);
  const b = await call('POST', '/boxes', { image: IMAGE, name: boxName('dash-b'), cpu: 2, memory_mb: 384, disk_size_gb: 3 }, 201);
  made.push(b.id);
  await call('POST', `/boxes/${b.id}:stop`);
  await runExec(a.id, ['sh', '-c', 'echo first run']);
  const exec = await runExec(a.id, ['sh', '-c', 'echo hello from the dashboard test; echo a warning >&2; exit 3']);
  expect(exec.exit_code).toBe(3);

  const requests: string[] = [];
  page.on('request', request => requests.push(request.url()));
  const opened = await openDashboard(page);

  // The meters say what /v1/info says, and /v1/info what the boxes add up to.
  const info = await call('GET', '/info');
  const boxes: any[] = await call('GET', '/boxes');
  const active = boxes.filter(x => x.status === 'running' || x.status === 'creating');
  expect(info.committed_cpu).toBe(active.reduce((sum, x) => sum + x.cpu, 0));
  expect(info.reserved_memory_mb).toBe(active.reduce((sum, x) => sum + x.memory_mb, 0));
  expect(info.used_disk_gb).toBe(boxes.reduce((sum, x) => sum + x.disk_size_gb, 0));
  expect(info.total_disk_gb).toBeGreaterThanOrEqual(info.free_disk_gb);
  const meters = {
    boxes: [`${info.boxes.running} / ${boxes.length}`, info.boxes.running, boxes.length],
    cpu: [`${info.committed_cpu} / ${info.max_committed_cpu}`, info.committed_cpu, info.max_committed_cpu],
    memory: [`${info.reserved_memory_mb} / ${info.max_memory_mb} MB`, info.reserved_memory_mb, info.max_memory_mb],
    disk: [`${info.used_disk_gb} / ${info.total_disk_gb} GB`, info.used_disk_gb, info.total_disk_gb]
  };
  for (const [name, [text, used, max]] of Object.entries(meters)) {
    const meter = page.locator(`#meter-${name}`);
    await expect(meter.locator('.value')).toHaveText(text as string);
    await expect(meter).toHaveAttribute('data-used', String(used));
    await expect(meter).toHaveAttribute('data-max', String(max));
    const width = await meter.locator('.fill').evaluate(fill => parseFloat((fill as HTMLElement).style.width));
    expect(width).toBeCloseTo(Math.min(100, ((used as number) / (max as number)) * 100), 1);
  }
  await expect(page.locator('#meter-disk .note')).toContainText(`${info.free_disk_gb} GB free`);

  // The rows, with their Disk column.
  const header = await page.locator('thead th').allTextContents();
  const rowA = boxRow(page, a.id);
  const rowB = boxRow(page, b.id);
  const cell = (row: typeof rowA, column: string) => row.locator('td').nth(header.indexOf(column));
  await expect(cell(rowA, 'Name')).toHaveText(a.name);
  await expect(cell(rowA, 'Status')).toHaveText('running');
  await expect(cell(rowA, 'Disk')).toHaveText('2 GB');
  await expect(cell(rowA, 'Memory')).toHaveText('256 MB');
  await expect(cell(rowB, 'Status')).toHaveText('stopped');
  await expect(cell(rowB, 'Disk')).toHaveText('3 GB');
  await expect(cell(rowB, 'CPU')).toHaveText('2');

  // A click on a row opens its exec history, newest first, the newest one's output shown.
  await rowA.click();
  const detail = page.locator('#boxes tr.detail');
  await expect(detail.locator('.exec')).toHaveCount(2);
  await expect(detail.locator('.exec').first()).toContainText("sh -c 'echo hello from the dashboard test; echo a warning >&2; exit 3'");
  await expect(detail.locator('.exec').first().locator('.code')).toHaveText('exit 3');
  await expect(detail.locator('.exec').nth(1).locator('.code')).toHaveText('exit 0');
  const output = detail.locator('pre.output');
  await expect(output).toContainText('hello from the dashboard test');
  await expect(output.locator('.stderr')).toHaveText('a warning\n');
  await expect(output).toContainText('[exit code 3]');
  // it stays open across the page's refreshes
  await page.waitForTimeout(2500);
  await expect(output).toContainText('hello from the dashboard test');
  await expect(detail.locator('.exec')).toHaveCount(2);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `dashboard-${target().host}.png`), fullPage: true });

  // The other exec's output, then the history closes on a second click.
  await detail.locator('.exec').nth(1).click();
  await expect(output).toContainText('first run');
  await expect(output).not.toContainText('hello from the dashboard test');
  await rowA.click();
  await expect(page.locator('#boxes tr.detail')).toHaveCount(0);

  // Start and remove with the row's buttons, create with the form.
  await rowB.getByRole('button', { name: 'start' }).click();
  await expect(cell(rowB, 'Status')).toHaveText('running', { timeout: 30_000 });
  page.once('dialog', dialog => dialog.accept());
  await rowB.getByRole('button', { name: 'remove' }).click();
  await expect(rowB).toHaveCount(0);
  await expect.poll(async () => (await fetch(`${target().base}v1/boxes/${b.id}`, {
    headers: { Authorization: `token ${target().token}` }
  })).status).toBe(404);
  const name = boxName('dash-form');
  await page.locator('#create input[name=image]').fill(IMAGE);
  await page.locator('#create input[name=name]').fill(name);
  await page.locator('#create input[name=memory_mb]').fill('128');
  await page.locator('#create input[name=disk_size_gb]').fill('1');
  await page.locator('#create button').click();
  const formBox = page.locator('#boxes tr.box', { hasText: name });
  await expect(formBox).toHaveCount(1, { timeout: 30_000 });
  made.push((await formBox.getAttribute('data-id'))!);
  await expect(formBox.locator('td').nth(header.indexOf('Disk'))).toHaveText('1 GB');
  await expect(page.locator('#error')).toHaveText('');

  // The token: only in the address that opened the page, never shown in it.
  const { base, token } = target();
  expect(await page.locator('body').innerText()).not.toContain(token);
  const origin = new URL(base).origin;
  for (const url of requests) {
    expect(new URL(url).origin, url).toBe(origin);
  }
  expect(requests.filter(url => url.includes(token))).toEqual([opened]);
});
