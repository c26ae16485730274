/**
 * What the dashboard specs share: the server whose `/ui` they open (a `boxrun serve`
 * given by BOXRUN_DASH_URL and BOXRUN_DASH_TOKEN, else the BoxRun API of the `jupyter
 * lab` global-setup.ts started), its API, and boxes made for a spec.
 */
import { Page, expect } from '@playwright/test';
import * as crypto from 'crypto';

/** Where the dashboard is (`…/ui` below `base`), with the token that opens it. */
export function target() {
  if (process.env.BOXRUN_DASH_URL) {
    return { base: process.env.BOXRUN_DASH_URL, token: process.env.BOXRUN_DASH_TOKEN!, host: 'serve' };
  }
  return { base: `${process.env.BOXRUN_UI_URL}boxrun/`, token: process.env.BOXRUN_UI_TOKEN!, host: 'jupyter' };
}

/** A call to the BoxRun API with the token; the JSON body (status checked). */
export async function call(method: string, path: string, body?: unknown, status = 200): Promise<any> {
  const { base, token } = target();
  const response = await fetch(`${base}v1${path}`, {
    method,
    headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  const text = await response.text();
  expect(response.status, `${method} ${path}: ${text}`).toBe(status);
  return text ? JSON.parse(text) : null;
}

/** A unique box name for this run. */
export function boxName(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(3).toString('hex')}`;
}

/** Run `cmd` in `box` and wait for it to end; the exec. */
export async function runExec(box: string, cmd: string[]): Promise<any> {
  const exec = await call('POST', `/boxes/${box}/exec`, { cmd }, 201);
  await expect
    .poll(async () => (await call('GET', `/boxes/${box}/exec/${exec.id}`)).status, { timeout: 30_000 })
    .not.toBe('running');
  return call('GET', `/boxes/${box}/exec/${exec.id}`);
}

/** Open the dashboard as a user would: with the token in its address (`boxrun serve`
 * prints it so), or logged in to Jupyter (its cookie, and its XSRF token on writes);
 * the address that carried the token. */
export async function openDashboard(page: Page): Promise<string> {
  const { base, token, host } = target();
  const opened = host === 'jupyter'
    ? `${process.env.BOXRUN_UI_URL}login?next=${encodeURIComponent(new URL(`${base}ui`).pathname)}&token=${token}`
    : `${base}ui?token=${token}`;
  await page.goto(opened);
  await expect(page).toHaveURL(`${base}ui${host === 'jupyter' ? '' : `?token=${token}`}`);
  await expect(page.locator('#updated')).toContainText('updated');
  return opened;
}

/** The dashboard's row of the box `id`. */
export function boxRow(page: Page, id: string) {
  return page.locator(`#boxes tr.box[data-id="${id}"]`);
}
