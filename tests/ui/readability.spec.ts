/**
 * A new user's first notebooks: `%boxrun monitor` readable in a notebook column (700 and
 * 400 px), its host widgets back after a page reload, kernel boxes told apart in the
 * panel, no stray `No such comm` under a new notebook's first cell, and the status bar
 * following the kernel's box through a failure.
 */
import { Locator, Page, expect, test } from '@playwright/test';

import {
  IMAGE,
  api,
  createNotebook,
  jupyter,
  kernelReady,
  kernelspecs,
  openLab,
  openNotebook,
  runCell,
  save,
  shot,
  shutDownSessions
} from './helpers';

test.describe.configure({ mode: 'serial' });

const LONG = 'analysis-pipeline-with-a-rather-long-name-2024';

test.beforeEach(async () => {
  test.skip(!(await kernelspecs()).boxrun, 'the boxrun kernel is not installed');
});

test.afterEach(async () => {
  await shutDownSessions();
});

test.afterAll(async () => {
  for (const box of (await api('GET', '/boxes')).json ?? []) {
    if (['layout-web', LONG].includes(box.name)) {
      await api('DELETE', `/boxes/${box.id}?force=true`);
    }
  }
});

/**
 * The buttons' accessible names in `scope` (as a screen reader would say them), without
 * Font Awesome's icon glyphs (private-use characters).
 */
async function buttonNames(scope: Locator): Promise<string[]> {
  const snapshot = await scope.ariaSnapshot();
  return [...snapshot.matchAll(/- button "([^"]*)"/g)].map(m =>
    m[1].replace(/[\uE000-\uF8FF]/g, '').trim()
  );
}

/** Make the current notebook `width` px wide: no side bars, a viewport that fits it. */
async function notebookWidth(page: Page, width: number): Promise<void> {
  await page.evaluate(() => {
    const shell = (window as any).jupyterapp.shell;
    shell.collapseLeft();
    shell.collapseRight();
  });
  const panel = page.locator('.jp-NotebookPanel:visible');
  for (let i = 0; i < 3; i++) {
    const viewport = page.viewportSize()!;
    const actual = (await panel.boundingBox())!.width;
    if (Math.abs(actual - width) <= 2) {
      return;
    }
    await page.setViewportSize({ width: viewport.width + width - actual, height: 900 });
    await page.waitForTimeout(300);
  }
  expect(Math.round((await panel.boundingBox())!.width)).toBeGreaterThanOrEqual(width - 2);
}

/** Each box line's parts (name, badge, cpu and memory bars): their boxes on the page. */
async function lineParts(line: Locator) {
  const parts = line.locator(':scope > .widget-html');
  return Promise.all([0, 1, 2, 3].map(async i => (await parts.nth(i).boundingBox())!));
}

test('%boxrun monitor reads in a 700 px and a 400 px notebook column, and comes back after a reload', async ({
  page
}) => {
  test.setTimeout(300_000);
  for (const name of ['layout-web', LONG]) {
    const made = await api('POST', '/boxes', { image: IMAGE, name, cpu: 1, memory_mb: 256 });
    expect(made.status, JSON.stringify(made.json)).toBe(201);
  }
  const file = 'monitor-layout.ipynb';
  await createNotebook(file, 'boxrun', ['']);
  const notebook = await openNotebook(page, file);
  await kernelReady(page);
  await runCell(page, notebook, '%boxrun monitor');

  const header = page.locator('.widget-html', { hasText: /^\s*BoxRun at / });
  const output = notebook.locator('.jp-OutputArea', { has: header }).first();
  await expect(output).toBeVisible({ timeout: 90_000 });
  const lineOf = (name: string) =>
    output.locator('.widget-hbox', {
      has: page.locator(`.widget-html [title^="${name} ("]`)
    });
  const line = lineOf(LONG);
  await expect(line.locator(':scope > .widget-html').nth(1)).toHaveText('running');
  // The kernel's own box is listed too, with its live bars.
  const own = output.locator('.widget-hbox', {
    has: page.locator('.widget-html [title^="jupyter-"]')
  });
  await expect(own.locator(':scope > .widget-html').nth(2)).toContainText(/cpu \d+%/, {
    timeout: 30_000
  });

  await notebookWidth(page, 700);
  // One line per box: name, badge and both bars side by side, all inside the output.
  const area = (await output.boundingBox())!;
  for (const name of ['layout-web', LONG]) {
    const parts = await lineParts(lineOf(name));
    const top = parts[0].y + parts[0].height / 2;
    for (const part of parts) {
      expect(Math.abs(part.y + part.height / 2 - top), `${name}: one line`).toBeLessThan(8);
      expect(part.x + part.width).toBeLessThanOrEqual(area.x + area.width + 1);
    }
  }
  // The full name on hover; the visible one cut in the middle, keeping its end.
  const title = line.locator(`[title^="${LONG} ("]`);
  await expect(title).toHaveAttribute('title', `${LONG} (${IMAGE})`);
  await expect(title.locator('b')).toHaveText(/^analysis-.*….*name-2024$/);
  // Details and actions open below the line; every button says what it does in full.
  await line.locator('button', { hasText: 'details' }).click();
  const row = line.locator('xpath=..'); // the box's row: its line and details
  await expect(row.locator('button', { hasText: 'stop' })).toBeVisible();
  const names = await buttonNames(output);
  expect(names).toEqual(
    expect.arrayContaining(['details', 'start', 'stop', 'remove', 'use here'])
  );
  for (const name of names) {
    expect(name.trim(), 'a button without a name').not.toBe('');
    expect(name, 'a truncated button').not.toMatch(/…|\.\.\./);
  }
  for (const clipped of await output
    .locator('button')
    .evaluateAll(buttons =>
      buttons.filter(b => b.scrollWidth > b.clientWidth + 1).map(b => b.textContent)
    )) {
    expect(clipped, 'a button whose word does not fit').toBeNull();
  }
  await shot(page, 'monitor-700.png', output);

  await notebookWidth(page, 400);
  const narrow = (await output.boundingBox())!;
  for (const name of ['layout-web', LONG]) {
    const [title400, badge, cpu, memory] = await lineParts(lineOf(name));
    // Name and badge on the first line, the bars wrapped under them; nothing outside.
    expect(Math.abs(title400.y - badge.y)).toBeLessThan(8);
    expect(title400.width).toBeGreaterThan(100);
    for (const part of [title400, badge, cpu, memory]) {
      expect(part.x + part.width).toBeLessThanOrEqual(narrow.x + narrow.width + 1);
    }
  }
  for (const button of await row.locator('button:visible').all()) {
    const box = (await button.boundingBox())!;
    expect(box.x + box.width).toBeLessThanOrEqual(narrow.x + narrow.width + 1);
  }
  await shot(page, 'monitor-400.png', output);

  // After a reload the page asks the kernel for its widgets: the host answers for them.
  await page.setViewportSize({ width: 1400, height: 900 });
  await save(page);
  await page.reload();
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 60_000 });
  const again = page.locator('.jp-NotebookPanel:visible .widget-html', {
    hasText: /^\s*BoxRun at /
  });
  await expect(again).toBeVisible({ timeout: 60_000 });
  await expect(
    page.locator('.jp-NotebookPanel:visible .widget-html [title^="layout-web ("]')
  ).toBeVisible();
});

test('the panel tells two notebooks’ kernel boxes apart', async ({ page }) => {
  test.setTimeout(300_000);
  const notebooks = ['first-analysis.ipynb', 'second-analysis.ipynb'];
  const boxNames: Record<string, string> = {};
  for (const file of notebooks) {
    await createNotebook(file, 'boxrun');
    const made = await jupyter('POST', '/api/sessions', {
      path: file,
      name: file,
      type: 'notebook',
      kernel: { name: 'boxrun' }
    });
    expect(made.status, JSON.stringify(made.json)).toBe(201);
    boxNames[file] = `jupyter-${made.json.kernel.id}`;
  }
  await openLab(page);
  for (const file of notebooks) {
    const box = page.locator(
      `#boxrun-panel .jp-BoxRun-box[data-box-name="${boxNames[file]}"]`
    );
    await expect(box.locator('.jp-BoxRun-badge')).toHaveText('running', { timeout: 90_000 });
    // The notebook's name first, then the box's, cut in the middle, whole in its title.
    const notebook = box.locator('.jp-BoxRun-name .jp-BoxRun-kernel');
    await expect(notebook).toHaveText(file.replace('.ipynb', ''));
    await expect(notebook.locator('[title]')).toHaveAttribute('title', new RegExp(`^Open ${file} `));
    const name = box.locator('.jp-BoxRun-boxName');
    await expect(name).toHaveAttribute('title', boxNames[file]);
    await expect(name.locator('.jp-BoxRun-middleTail')).toHaveText(boxNames[file].slice(-8));
    await expect(name.locator('.jp-BoxRun-middleTail')).toBeVisible();
    for (const label of await buttonNames(box)) {
      expect(label).not.toMatch(/…|\.\.\./);
    }
  }
  await expect(page.locator('#boxrun-panel .jp-BoxRun-info')).toContainText(/CPU \d+ of \d+/);
  await shot(page, 'panel-two-kernels.png');
});

test('a new BoxRun notebook’s first cell, run at once, has no stray comm error', async ({
  page
}) => {
  test.setTimeout(300_000);
  const file = 'first-cell.ipynb';
  await createNotebook(file, 'boxrun', ['print(6 * 7)']);
  const notebook = await openNotebook(page, file);
  // At once: as soon as the notebook has a kernel to send to, before it is ready (the
  // kernel still opens its box) and while the widget manager opens its comm.
  await page.waitForFunction(
    () => !!(window as any).jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel
  );
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('notebook:run-all-cells')
  );
  const outputs = notebook.locator('.jp-OutputArea-output');
  await expect(outputs.first()).toHaveText('42', { timeout: 120_000 });
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('notebook:insert-cell-below')
  );
  await runCell(page, notebook, 'import time; time.sleep(2); print("second")');
  await expect(outputs.filter({ hasText: 'second' })).toHaveCount(1, { timeout: 60_000 });
  const texts = (await outputs.allInnerTexts()).map(text => text.trim());
  expect(texts).toEqual(['42', 'second']);
  await shot(page, 'first-cell.png', notebook);
});

test('the status bar follows the kernel’s box: running, removed, failed with the reason', async ({
  page
}) => {
  test.setTimeout(300_000);
  const file = 'box-state.ipynb';
  await createNotebook(file, 'boxrun', ['print(1)']);
  await openNotebook(page, file);
  await kernelReady(page);
  const item = page.locator('.jp-BoxRun-statusItem');
  const state = item.locator('[data-state]');
  await expect(state).toHaveAttribute('data-state', 'running', { timeout: 90_000 });
  const name = (await item.locator('[data-box-name]').getAttribute('data-box-name'))!;

  expect((await api('DELETE', `/boxes/${name}?force=true`)).status).toBe(200);
  await expect(state).toHaveAttribute('data-state', 'removed');
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('notebook:run-all-cells')
  );
  await expect(state).toHaveAttribute('data-state', 'failed');
  await expect(item.locator('.jp-BoxRun-statusText')).toHaveAttribute('title', /box/);
  await expect(state).toHaveText(/failed/);
  await shot(page, 'statusbar-failed.png', page.locator('#jp-main-statusbar'));

  // Restarting the kernel brings a working box, and the status bar says so.
  await page.evaluate(() =>
    (window as any).jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()
  );
  await expect(state).toHaveAttribute('data-state', 'running', { timeout: 90_000 });
});
