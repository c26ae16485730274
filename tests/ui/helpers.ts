/**
 * What the UI specs share: the server global-setup.ts started, its BoxRun and Jupyter
 * APIs, opening JupyterLab and notebooks, running cells, and screenshots.
 */
import { Locator, Page, expect } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

import { ARTIFACTS } from './playwright.config';

/** The image the specs make boxes from. */
export const IMAGE = 'local/debian';

/** The `jupyter lab` of global-setup.ts: its base URL and token. */
export function server() {
  return { url: process.env.BOXRUN_UI_URL!, token: process.env.BOXRUN_UI_TOKEN! };
}

/** A call to a Jupyter server API (`/api/...`), token auth; status and JSON body. */
export async function jupyter(method: string, apiPath: string, body?: unknown): Promise<any> {
  const { url, token } = server();
  const response = await fetch(`${url}${apiPath.replace(/^\//, '')}`, {
    method,
    headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

/** A call to the BoxRun API, as the SDK makes it (token auth). */
export async function api(method: string, apiPath: string, body?: unknown): Promise<any> {
  return jupyter(method, `boxrun/v1${apiPath}`, body);
}

export async function openLab(page: Page): Promise<void> {
  const { url, token } = server();
  await page.goto(`${url}lab?token=${token}`);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 60_000 });
  await expect(page.locator('.jp-SideBar li[data-id="boxrun-panel"]')).toBeVisible();
  // The panel's own command (a click on the tab would toggle a restored panel closed),
  // once the layout is restored (the restorer would otherwise bring back another panel).
  await page.evaluate(async () => {
    const app = (window as any).jupyterapp;
    await app.restored;
    await app.commands.execute('boxrun:open-panel');
  });
  await expect(page.locator('#boxrun-panel')).toBeVisible();
  await expect(page.locator('#boxrun-panel .jp-BoxRun-title')).toHaveText('BoxRun');
}

/** A screenshot of `target` (the BoxRun panel by default) in test-artifacts/. */
export async function shot(page: Page, name: string, target?: Locator) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await (target ?? page.locator('#boxrun-panel')).screenshot({ path: path.join(ARTIFACTS, name) });
}

/** The kernelspecs the server has, by name. */
export async function kernelspecs(): Promise<Record<string, unknown>> {
  return (await jupyter('GET', '/api/kernelspecs')).json?.kernelspecs ?? {};
}

/** Write a notebook on kernel `kernel` (a kernelspec name), with `cells` code cells. */
export async function createNotebook(file: string, kernel: string, cells: string[] = []) {
  const spec = ((await kernelspecs())[kernel] as any)?.spec ?? {};
  const put = await jupyter('PUT', `/api/contents/${file}`, {
    type: 'notebook',
    content: {
      cells: cells.map(source => ({
        cell_type: 'code',
        source,
        metadata: {},
        outputs: [],
        execution_count: null
      })),
      metadata: {
        kernelspec: {
          name: kernel,
          display_name: spec.display_name ?? kernel,
          language: spec.language ?? 'python'
        }
      },
      nbformat: 4,
      nbformat_minor: 5
    }
  });
  expect(put.status, JSON.stringify(put.json)).toBeLessThan(300);
}

/** The notebook `file` as saved on the server (nbformat JSON). */
export async function savedNotebook(file: string): Promise<any> {
  const { status, json } = await jupyter('GET', `/api/contents/${file}?content=1`);
  expect(status).toBe(200);
  return json.content;
}

/**
 * Open the notebook `file` alone, in a fresh workspace named after it (so no notebook of
 * another test is restored with it, starting its kernel); its panel, once it is ready.
 */
export async function openNotebook(page: Page, file: string): Promise<Locator> {
  const { url, token } = server();
  const workspace = file.replace(/[^A-Za-z0-9-]/g, '-');
  await page.goto(`${url}lab/workspaces/${workspace}/tree/${file}?token=${token}`);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 60_000 });
  const notebook = page.locator('.jp-NotebookPanel:visible');
  await expect(notebook.locator('.jp-Cell').first()).toBeVisible({ timeout: 60_000 });
  await expect(notebook).toHaveCount(1);
  return notebook;
}

/** Wait until the current notebook's kernel is started and idle. */
export async function kernelReady(page: Page, timeout = 120_000): Promise<void> {
  await page.waitForFunction(
    () => {
      const context = (window as any).jupyterapp.shell.currentWidget?.sessionContext;
      const kernel = context?.session?.kernel;
      return kernel?.connectionStatus === 'connected' && kernel?.status === 'idle';
    },
    undefined,
    { timeout }
  );
}

/** Type `code` into the notebook's active cell and run it (Shift+Enter). */
export async function runCell(page: Page, notebook: Locator, code: string): Promise<void> {
  const editor = notebook.locator('.jp-Cell.jp-mod-active .cm-content');
  await editor.click();
  await editor.fill(code);
  await expect(editor).toHaveText(code);
  await page.keyboard.press('Shift+Enter');
}

/** Save the current document (File ▸ Save). */
export async function save(page: Page): Promise<void> {
  await page.evaluate(() => (window as any).jupyterapp.commands.execute('docmanager:save'));
}

/** Shut down every kernel session (the BoxRun kernel's box goes away with its kernel). */
export async function shutDownSessions(): Promise<void> {
  for (const session of (await jupyter('GET', '/api/sessions')).json ?? []) {
    await jupyter('DELETE', `/api/sessions/${session.id}`);
  }
}
