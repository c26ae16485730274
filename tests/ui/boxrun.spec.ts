/**
 * The BoxRun panel against a real JupyterLab and BoxRun server: listing, creating,
 * stopping, starting and removing boxes, exec output, errors, and a terminal.
 */
import { Page, expect, test } from '@playwright/test';

import {
  IMAGE,
  api,
  createNotebook,
  kernelReady,
  kernelspecs,
  openLab,
  server,
  shot,
  shutDownSessions
} from './helpers';

function row(page: Page, name: string) {
  return page.locator(`#boxrun-panel .jp-BoxRun-box[data-box-name="${name}"]`);
}

test.describe.configure({ mode: 'serial' });

test.afterAll(async () => {
  const { json } = await api('GET', '/boxes');
  for (const box of json ?? []) {
    await api('DELETE', `/boxes/${box.id}?force=true`);
  }
});

test('the panel lists a box created through the API, with its details', async ({ page }) => {
  const created = await api('POST', '/boxes', {
    image: IMAGE,
    name: 'sdk-box',
    cpu: 1,
    memory_mb: 256
  });
  expect(created.status, JSON.stringify(created.json)).toBe(201);
  const exec = await api('POST', `/boxes/${created.json.id}/exec`, {
    cmd: ['sh', '-c', 'echo hello from an exec; echo oops >&2']
  });
  expect(exec.status).toBe(201);

  await openLab(page);
  const box = row(page, 'sdk-box');
  await expect(box).toBeVisible();
  await expect(box.locator('.jp-BoxRun-badge')).toHaveText('running');
  await expect(box.locator('.jp-BoxRun-imageName')).toHaveText(created.json.image);
  await expect(page.locator('#boxrun-panel .jp-BoxRun-info')).toContainText('isolation');
  // Live metrics arrive from the metrics stream.
  await expect(box.locator('.jp-BoxRun-usage')).toContainText(/CPU \d+(\.\d)?% of 1/);
  await expect(box.locator('.jp-BoxRun-usage')).toContainText(/mem \d/);

  // Its execs, and the output of one, replayed from the exec's SSE stream.
  await box.locator('.jp-BoxRun-toggle').click();
  const item = box.locator('.jp-BoxRun-item', { hasText: 'echo hello from an exec' });
  await expect(item).toContainText(/succeeded, exit 0 after/);
  await item.click();
  const output = page.locator('#boxrun-panel .jp-BoxRun-outputText');
  await expect(output).toContainText('hello from an exec');
  await expect(output.locator('.jp-BoxRun-out-stderr')).toContainText('oops');
  await expect(output).toContainText('[exit 0]');
  await shot(page, 'panel-light.png');
});

test('creating a box from the panel makes it appear on the server', async ({ page }) => {
  await openLab(page);
  await page.locator('#boxrun-panel .jp-BoxRun-new').click();
  const form = page.locator('#boxrun-panel form.jp-BoxRun-create');
  await expect(form).toBeVisible();
  await expect(form.locator('select')).toBeVisible(); // the image picker, from /v1/images
  await form.locator('select').selectOption(IMAGE);
  await form.locator('input[name="name"]').fill('ui-box');
  await form.locator('input[name="cpu"]').fill('1');
  await form.locator('input[name="memory"]').fill('256');
  await shot(page, 'panel-create-form.png');
  await form.locator('button[type="submit"]').click();

  await expect(row(page, 'ui-box').locator('.jp-BoxRun-badge')).toHaveText('running', {
    timeout: 60_000
  });
  const { status, json } = await api('GET', '/boxes/ui-box');
  expect(status).toBe(200);
  expect(json.status).toBe('running');
  expect(json.cpu).toBe(1);
  expect(json.memory_mb).toBe(256);
});

test('errors from the API are shown in words', async ({ page }) => {
  await openLab(page);
  await page.locator('#boxrun-panel .jp-BoxRun-new').click();
  const form = page.locator('#boxrun-panel form.jp-BoxRun-create');
  await form.locator('input[name="name"]').fill('ui-box'); // taken
  await form.locator('input[name="cpu"]').fill('1');
  await form.locator('input[name="memory"]').fill('256');
  await form.locator('button[type="submit"]').click();
  await expect(form.locator('.jp-BoxRun-error')).toContainText(
    /already exists \(NAME_ALREADY_EXISTS\)/
  );
  await form.locator('input[name="name"]').fill('not a name!');
  await form.locator('button[type="submit"]').click();
  await expect(form.locator('.jp-BoxRun-error')).toContainText('1–63 letters');
});

test('stop, start and remove from the panel take effect on the server', async ({ page }) => {
  await openLab(page);
  const box = row(page, 'ui-box');
  await expect(box.locator('.jp-BoxRun-badge')).toHaveText('running');

  await box.locator('.jp-BoxRun-stop').click();
  await expect(box.locator('.jp-BoxRun-badge')).toHaveText('stopped');
  expect((await api('GET', '/boxes/ui-box')).json.status).toBe('stopped');

  await box.locator('.jp-BoxRun-start').click();
  await expect(box.locator('.jp-BoxRun-badge')).toHaveText('running');
  expect((await api('GET', '/boxes/ui-box')).json.status).toBe('running');

  // Changes made elsewhere arrive through the lifecycle stream.
  await api('POST', '/boxes/ui-box:stop');
  await expect(box.locator('.jp-BoxRun-badge')).toHaveText('stopped');

  await box.locator('.jp-BoxRun-remove').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Remove the box ui-box?');
  await shot(page, 'remove-dialog.png', dialog.locator('.jp-Dialog-content'));
  await dialog.locator('button.jp-mod-warn').click();
  await expect(box).toHaveCount(0);
  expect((await api('GET', '/boxes/ui-box')).status).toBe(404);
});

test('a terminal tab runs a command in the box', async ({ page }) => {
  await openLab(page);
  const box = row(page, 'sdk-box');
  await box.locator('.jp-BoxRun-terminal').click();
  const terminal = page.locator('.jp-BoxRun-terminalWidget').first();
  await expect(terminal).toHaveAttribute('data-state', 'open');
  await expect(page.locator('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel')).toContainText(
    'sdk-box (terminal)'
  );
  await terminal.locator('.xterm').click();
  await page.keyboard.type('echo "hello $((6 * 7))"\n');
  await expect(terminal.locator('.xterm-rows')).toContainText('hello 42');
  await page.keyboard.type('stty size\n');
  const rows = terminal.locator('.xterm-rows');
  await expect(rows).toContainText(/\n?\d+ \d+/);
  await shot(page, 'terminal.png', page.locator('#jp-main-dock-panel'));

  await page.keyboard.type('exit 3\n');
  await expect(terminal).toHaveAttribute('data-state', 'exited');
  await expect(terminal.locator('.jp-BoxRun-terminalStatus')).toHaveText(
    'The shell exited with code 3.'
  );
  await expect(page.locator('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel')).toContainText(
    '[exited]'
  );
});

test('the status bar names the box of a notebook on the BoxRun kernel', async ({ page }) => {
  test.skip(!(await kernelspecs()).boxrun, 'the boxrun kernel is not installed');
  await createNotebook('in-a-box.ipynb', 'boxrun');

  const { url, token } = server();
  await openLab(page);
  await page.goto(`${url}lab/tree/in-a-box.ipynb?token=${token}`);
  const item = page.locator('.jp-BoxRun-statusItem');
  await expect(item).toContainText(/jupyter-[0-9a-f-]+ · running/, { timeout: 90_000 });
  const name = (await item.locator('[data-box-name]').getAttribute('data-box-name'))!;
  expect(name).toMatch(/^jupyter-/);
  await shot(page, 'statusbar.png', page.locator('#jp-main-statusbar'));

  await item.click();
  const box = row(page, name);
  await expect(box).toHaveClass(/jp-mod-highlighted/);
  await expect(box.locator('.jp-BoxRun-kernel')).toHaveText('in-a-box');
  // The kernel's interpreter session shows among the box's sessions.
  await expect(box.locator('.jp-BoxRun-details .jp-BoxRun-item')).toContainText(/session/);
  await shot(page, 'panel-kernel-box.png');

  // Shut the kernel down once its box is open: its box goes away with it.
  await kernelReady(page);
  await shutDownSessions();
  await expect(box).toHaveCount(0, { timeout: 60_000 });
});

test('the panel follows the dark theme', async ({ page }) => {
  await openLab(page);
  await page.evaluate(async () => {
    // The theme menu's command.
    await (window as any).jupyterapp.commands.execute('apputils:change-theme', {
      theme: 'JupyterLab Dark'
    });
  });
  await expect(page.locator('body')).toHaveAttribute('data-jp-theme-light', 'false');
  await expect(row(page, 'sdk-box')).toBeVisible();
  await row(page, 'sdk-box').locator('.jp-BoxRun-toggle').click();
  await expect(row(page, 'sdk-box').locator('.jp-BoxRun-item').first()).toBeVisible();
  await shot(page, 'panel-dark.png');
  await page.evaluate(async () => {
    await (window as any).jupyterapp.commands.execute('apputils:change-theme', {
      theme: 'JupyterLab Light'
    });
  });
});

test('the command palette has the BoxRun actions', async ({ page }) => {
  await openLab(page);
  const palette = page.locator('.jp-ModalCommandPalette');
  const search = palette.locator('input');
  // A notebook restored late takes the focus, and the modal palette closes on blur:
  // (re)open it until the search sticks.
  const searchFor = async (text: string) => {
    if (!(await palette.isVisible())) {
      await page.evaluate(() =>
        (window as any).jupyterapp.commands.execute('apputils:activate-command-palette')
      );
    }
    await search.fill(text, { timeout: 2000 });
  };
  await expect(async () => {
    await searchFor('BoxRun');
    for (const label of [
      'Create a BoxRun Box…',
      'Start a BoxRun Box…',
      'Stop a BoxRun Box…',
      'Remove a BoxRun Box…',
      'Open a Terminal in a BoxRun Box…',
      'Show the BoxRun Panel'
    ]) {
      await expect(palette.locator('.lm-CommandPalette-item', { hasText: label })).toHaveCount(
        1,
        { timeout: 2000 }
      );
    }
  }).toPass({ timeout: 40_000 });
  // Narrow to one item and run it with Enter: the palette re-renders its items as the
  // search settles, so a click could land on a detached node.
  await expect(async () => {
    await searchFor('Create a BoxRun Box');
    await expect(palette.locator('.lm-CommandPalette-item')).toHaveCount(1, { timeout: 2000 });
    await search.press('Enter', { timeout: 2000 });
    await expect(page.locator('#boxrun-panel form.jp-BoxRun-create')).toBeVisible({
      timeout: 2000
    });
  }).toPass({ timeout: 40_000 });
});
