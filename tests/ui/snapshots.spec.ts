/**
 * Snapshots per cell of a BoxRun notebook against a real JupyterLab and BoxRun server:
 * "Branch notebook here" from a cell's context menu opens a copy up to that cell on a fork
 * of the box, and "Restore to this snapshot" puts the box back. The suite's server runs its
 * default backend (`auto`: gVisor where runsc works, with memory snapshots) unless
 * BOXRUN_BACKEND says otherwise (namespace: disk-only snapshots). The first two tests pass
 * on either, as they check the disk; the last, a branch's kernel on the interpreter its
 * fork carries, needs memory snapshots.
 */
import { Locator, Page, expect, test } from '@playwright/test';

import {
  api,
  createNotebook,
  kernelReady,
  kernelspecs,
  openNotebook,
  runCell,
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
    if (/-b\d+$/.test(box.name ?? '')) {
      await api('DELETE', `/boxes/${box.id}?force=true`);
    }
  }
});

/** Run the context-menu item `label` on the notebook's cell `index` (right-clicked only). */
async function cellMenu(page: Page, notebook: Locator, index: number, label: string) {
  const prompt = notebook.locator('.jp-Cell').nth(index).locator('.jp-InputPrompt');
  await prompt.click({ button: 'right' });
  await page.locator('.lm-Menu-item', { hasText: label }).click();
}

/** The output area of the notebook's cell `index`. */
function output(notebook: Locator, index: number): Locator {
  return notebook.locator('.jp-Cell').nth(index).locator('.jp-Cell-outputArea');
}

test('"Branch notebook here" opens a copy up to the cell on a fork of the box', async ({ page }) => {
  test.skip(!(await kernelspecs()).boxrun, 'the boxrun kernel is not installed');
  test.setTimeout(300_000);
  await createNotebook('branched.ipynb', 'boxrun', ['', 'y = 1']);
  const notebook = await openNotebook(page, 'branched.ipynb');
  await kernelReady(page);
  // State before the branch point: a variable, and a file on the box's own disk.
  await runCell(
    page,
    notebook,
    "x = 41; open('/root/branch-mark.txt', 'w').write('from the source'); print('ready')"
  );
  await expect(output(notebook, 0)).toContainText('ready', { timeout: 180_000 });

  await cellMenu(page, notebook, 0, 'Branch notebook here');

  // The cell has its snapshot, marked, and the branch opens in a new tab.
  await expect(notebook.locator('.jp-Cell').first()).toHaveClass(/jp-BoxRun-hasSnapshot/);
  const branch = page.locator('.jp-NotebookPanel:visible');
  await expect(page.locator('.lm-TabBar-tab.jp-mod-current')).toContainText('branched-branch-1', {
    timeout: 60_000
  });
  await expect(branch.locator('.jp-Cell')).toHaveCount(2, { timeout: 30_000 });
  await expect(branch.locator('.jp-Cell').first()).toContainText("x = 41");
  const saved = await savedNotebook('branched-branch-1.ipynb');
  expect(saved.cells.map((c: any) => c.source)).toEqual([
    "x = 41; open('/root/branch-mark.txt', 'w').write('from the source'); print('ready')",
    ''
  ]);
  const fork: string = saved.metadata.boxrun.branch_of;
  expect(fork).toMatch(/-b1$/);
  const forked = await api('GET', `/boxes/${fork}`);
  expect(forked.json?.status).toBe('running');

  // Its kernel runs in the fork (told so: on a disk-only fork, in a new interpreter), where
  // the source's disk is.
  await kernelReady(page);
  const memory = (await api('GET', '/info')).json?.backend === 'gvisor';
  const told = page.locator('.jp-Notification-Toast-info, .Toastify__toast')
    .filter({ hasText: `This branch runs in box ${fork}` });
  await expect(told).toBeVisible({ timeout: 120_000 });
  await expect(told).toContainText(memory ? 'variables and all' : 'in a new interpreter');
  await branch.locator('.jp-Cell').nth(1).locator('.jp-InputPrompt').click();
  await runCell(
    page,
    branch,
    "print(open('/root/branch-mark.txt').read())"
  );
  const seen = output(branch, 1);
  await expect(seen).toContainText('from the source', { timeout: 120_000 });
  await shot(page, 'snapshots-branch.png', branch);

  // A restarted kernel (which opens a box of its own) moves to the fork again.
  await page.evaluate(() =>
    (window as any).jupyterapp.shell.currentWidget.sessionContext.restartKernel()
  );
  await kernelReady(page);
  await expect(page.locator('.Toastify__toast').filter({ hasText: `This branch runs in box ${fork}` }))
    .toHaveCount(2, { timeout: 120_000 });
  await expect(told.last()).toContainText('in a new interpreter');
  await runCell(page, branch, "print(open('/root/branch-mark.txt').read() + ' again')");
  await expect(output(branch, 2)).toContainText('from the source again', { timeout: 120_000 });
});

test('"Restore to this snapshot" puts the box back in the state after the cell', async ({ page }) => {
  test.skip(!(await kernelspecs()).boxrun, 'the boxrun kernel is not installed');
  test.setTimeout(300_000);
  await createNotebook('restored.ipynb', 'boxrun', ['']);
  const notebook = await openNotebook(page, 'restored.ipynb');
  await kernelReady(page);
  await runCell(page, notebook, "open('/root/mark.txt', 'w').write('kept'); print('one')");
  await expect(output(notebook, 0)).toContainText('one', { timeout: 180_000 });
  await cellMenu(page, notebook, 0, 'Snapshot after this cell');
  await expect(notebook.locator('.jp-Cell').first()).toHaveClass(/jp-BoxRun-hasSnapshot/, {
    timeout: 60_000
  });
  const snap = (await page.evaluate(
    () => (window as any).jupyterapp.shell.currentWidget.content.widgets[0].model.getMetadata('boxrun')
  )).snapshot;
  expect(snap.name).toMatch(/^cell-/);
  const listed = await api('GET', `/boxes/${snap.box}/snapshots`);
  expect(listed.json.map((s: any) => s.name)).toContain(snap.name);
  // The panel lists it in the box's details, with its size and age.
  await page.evaluate(() => (window as any).jupyterapp.commands.execute('boxrun:open-panel'));
  const box = page.locator(`#boxrun-panel .jp-BoxRun-box[data-box-name="${snap.box}"]`);
  await box.locator('.jp-BoxRun-toggle').click();
  await expect(box.locator('.jp-BoxRun-snapshots .jp-BoxRun-item', { hasText: snap.name })).toContainText(
    /\d+(\.\d)? (B|KiB|MiB|GiB) · \d+ s ago · (memory|disk only)/
  );
  await shot(page, 'snapshots-panel.png');

  await notebook.locator('.jp-Cell').nth(1).locator('.jp-InputPrompt').click();
  await runCell(page, notebook, "import os; os.remove('/root/mark.txt'); print('two')");
  await expect(output(notebook, 1)).toContainText('two', { timeout: 60_000 });
  await cellMenu(page, notebook, 0, 'Restore to this snapshot');
  await expect(page.locator('.Toastify__toast').filter({ hasText: `is back at snapshot ${snap.name}` }))
    .toBeVisible({ timeout: 120_000 });
  await notebook.locator('.jp-Cell').nth(2).locator('.jp-InputPrompt').click();
  await runCell(page, notebook, "print(open('/root/mark.txt').read())");
  await expect(output(notebook, 2)).toContainText('kept', { timeout: 120_000 });
});

test('"Branch notebook here": the first new cell sees a variable of the source without re-running', async ({
  page
}) => {
  test.skip(!(await kernelspecs()).boxrun, 'the boxrun kernel is not installed');
  const backend = (await api('GET', '/info')).json?.backend;
  test.skip(
    backend !== 'gvisor',
    `memory snapshots need gVisor; this server runs ${backend}, whose branches get a new interpreter (the first test)`
  );
  test.setTimeout(300_000);
  await createNotebook('live.ipynb', 'boxrun', ['', '']);
  const notebook = await openNotebook(page, 'live.ipynb');
  await kernelReady(page);
  // A value a re-run would not make again.
  await runCell(page, notebook, "import random; secret = random.randrange(10**12); print('secret', secret)");
  await expect(output(notebook, 0)).toContainText(/secret \d+/, { timeout: 180_000 });
  const secret = /secret (\d+)/.exec(await output(notebook, 0).innerText())![1];

  await cellMenu(page, notebook, 0, 'Branch notebook here');
  await expect(page.locator('.lm-TabBar-tab.jp-mod-current')).toContainText('live-branch-1', {
    timeout: 60_000
  });
  const saved = await savedNotebook('live-branch-1.ipynb');
  const fork: string = saved.metadata.boxrun.branch_of;
  expect(saved.metadata.boxrun.branch_session).toMatch(/^sess_/);
  const branch = page.locator('.jp-NotebookPanel:visible');
  await kernelReady(page);
  await expect(
    page.locator('.Toastify__toast').filter({ hasText: `This branch runs in box ${fork}` })
  ).toContainText('variables and all', { timeout: 120_000 });

  // The source changes its variable: the branch's interpreter is a copy, apart.
  const sourceKernel = await page.evaluate(async () => {
    const app = (window as any).jupyterapp;
    const panels = [...app.shell.widgets('main')].filter((w: any) => w.context?.path === 'live.ipynb');
    const kernel = panels[0].sessionContext.session.kernel;
    await kernel.requestExecute({ code: 'secret = 0', silent: true }).done;
    return kernel.id;
  });
  expect(sourceKernel).toBeTruthy();

  await branch.locator('.jp-Cell').nth(1).locator('.jp-InputPrompt').click();
  await runCell(page, branch, "print('seen', secret)");
  await expect(output(branch, 1)).toContainText(`seen ${secret}`, { timeout: 120_000 });
  // the copied cell was not run again in the branch (its output is the copy's)
  await expect(output(branch, 0)).toContainText(`secret ${secret}`);
  await shot(page, 'snapshots-branch-live.png', branch);
});
