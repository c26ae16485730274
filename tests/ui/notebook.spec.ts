/**
 * Notebooks against a real JupyterLab and BoxRun server: the BoxRun kernel's per-cell
 * usage saved in the notebook, and the `%boxrun monitor` widget following a box.
 */
import { expect, test } from '@playwright/test';

import {
  IMAGE,
  api,
  createNotebook,
  kernelspecs,
  kernelReady,
  openNotebook,
  runCell,
  save,
  savedNotebook,
  shot,
  shutDownSessions
} from './helpers';

test.describe.configure({ mode: 'serial' });

test.afterEach(async () => {
  await shutDownSessions();
});

test.afterAll(async () => {
  for (const box of (await api('GET', '/boxes')).json ?? []) {
    if (box.name?.startsWith('monitored')) {
      await api('DELETE', `/boxes/${box.id}?force=true`);
    }
  }
});

test('a BoxRun notebook records each cell’s usage in the saved notebook', async ({ page }) => {
  test.skip(!(await kernelspecs()).boxrun, 'the boxrun kernel is not installed');
  test.setTimeout(300_000);
  const file = 'usage.ipynb';
  await createNotebook(file, 'boxrun', ['']);
  const notebook = await openNotebook(page, file);
  await kernelReady(page);

  await runCell(page, notebook, 'import time; x = bytearray(32 << 20); time.sleep(1.5); 6 * 7');
  const result = notebook.locator('.jp-CodeCell').first().locator('.jp-OutputArea-executeResult');
  await expect(result.locator('.jp-OutputArea-output')).toHaveText('42', { timeout: 180_000 });

  // The reply's usage reaches the cell's metadata as the reply arrives: save until it is
  // in the file.
  let usage: any;
  await expect(async () => {
    await save(page);
    usage = (await savedNotebook(file)).cells[0].metadata.boxrun;
    expect(usage).toBeDefined();
  }).toPass({ timeout: 30_000 });
  expect(usage.wall_time_s).toBeGreaterThanOrEqual(1.5);
  expect(usage.peak_memory_bytes).toBeGreaterThan(0);
  expect(usage.cpu_time_s).toBeGreaterThanOrEqual(0);
});

/**
 * `%boxrun monitor` in a notebook on `kernel`, after running `setup` cells: a box created
 * and then stopped through the API shows up running, then stopped, in the widget.
 */
function monitorTest(kernel: string, setup: string[]) {
  test(`%boxrun monitor shows a box’s status change after a stop (${kernel} kernel)`, async ({
    page
  }) => {
    test.skip(!(await kernelspecs())[kernel], `the ${kernel} kernel is not installed`);
    test.setTimeout(300_000);
    const file = `monitor-${kernel}.ipynb`;
    const name = `monitored-${kernel}`;
    await createNotebook(file, kernel, ['']);
    const notebook = await openNotebook(page, file);
    await kernelReady(page);
    for (const code of [...setup, '%boxrun monitor']) {
      await runCell(page, notebook, code);
    }

    // The widget: a header, then a row per box (title, status badge, reservations...).
    const header = page.locator('.widget-html', { hasText: /^\s*BoxRun at / });
    const output = notebook.locator('.jp-OutputArea', { has: header }).first();
    const monitor = output.locator('.widget-vbox', { has: header }).first();
    const failure = notebook.locator(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
      { hasText: /Error\b/ }
    );
    await expect(monitor.or(failure).first()).toBeVisible({ timeout: 90_000 });
    expect(await failure.allInnerTexts(), 'the cells failed').toEqual([]);

    const created = await api('POST', '/boxes', { image: IMAGE, name, cpu: 1, memory_mb: 256 });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    // The row's line: its name (and image, on hover) and then its status badge.
    const line = monitor.locator('.widget-hbox', {
      has: page.locator(`.widget-html [title="${name} (${IMAGE})"]`)
    });
    const status = line.locator(':scope > .widget-html').nth(1);
    await expect(status).toHaveText('running', { timeout: 90_000 });

    const stopped = await api('POST', `/boxes/${created.json.id}:stop`);
    expect(stopped.status, JSON.stringify(stopped.json)).toBe(200);
    await expect(status).toHaveText('stopped', { timeout: 90_000 });
    await shot(page, `monitor-stopped-${kernel}.png`, output);

    expect((await api('DELETE', `/boxes/${created.json.id}`)).status).toBe(200);
    await expect(line).toHaveCount(0, { timeout: 90_000 });
  });
}

monitorTest('python3', ['%load_ext boxrun_kernel']);
// `%boxrun` magics are built into the BoxRun kernel.
monitorTest('boxrun', []);
