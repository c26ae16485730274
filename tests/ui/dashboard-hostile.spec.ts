/**
 * A hostile box against the dashboard: markup in its exec output, commands and error
 * messages must be shown as text and never run. The page's own Content-Security-Policy
 * is bypassed here, so it is the page's rendering that is tested, not only its CSP.
 */
import { expect, test } from '@playwright/test';

import { boxName, boxRow, call, runExec, target } from './dashboard';

const IMAGE = 'local/debian';
const MARK = 'pwned';
const PAYLOAD = `<img src=x onerror="window.__${MARK}=1;document.title+=1"><script>window.__${MARK}=2</script>`;

let box: any;

test.afterAll(async () => {
  if (box) {
    await call('DELETE', `/boxes/${box.id}?force=true`);
  }
});

test('exec output, commands and messages from a box are text, never HTML', async ({ browser }) => {
  // Names cannot carry markup at all.
  await call('POST', '/boxes', { image: IMAGE, name: PAYLOAD }, 422);
  box = await call('POST', '/boxes', { image: IMAGE, name: boxName('hostile'), cpu: 1, memory_mb: 128 }, 201);
  const quoted = `'${PAYLOAD.replace(/'/g, `'\\''`)}'`;
  await runExec(box.id, ['sh', '-c', `printf '%s\\n' ${quoted}; printf '%s\\n' ${quoted} >&2`, PAYLOAD]);
  const missing = await runExec(box.id, [PAYLOAD]);  // its error message names the command
  expect(missing.exit_code).toBe(127);

  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  const dialogs: string[] = [];
  page.on('dialog', dialog => {
    dialogs.push(dialog.message());
    dialog.dismiss();
  });
  const { base, token } = target();
  const response = await page.goto(`${base}ui?token=${token}`);
  expect(response!.headers()['content-security-policy']).toContain("script-src 'nonce-");
  await boxRow(page, box.id).click();
  const execs = page.locator('#boxes tr.detail .exec');
  await expect(execs).toHaveCount(2);
  await expect(execs.first()).toContainText(PAYLOAD);
  const output = page.locator('#boxes tr.detail pre.output');
  await expect(output).toContainText('[exit code 127');
  await execs.nth(1).click();
  await expect(output).toContainText('[exit code 0]');
  await page.waitForTimeout(500);  // an image's error handler would have run by now

  expect(await page.evaluate(mark => (window as any)[`__${mark}`], MARK)).toBeUndefined();
  expect(await page.title()).toBe('BoxRun');
  expect(await page.locator('img, script:not([nonce])').count()).toBe(0);
  expect(dialogs).toEqual([]);
  // and it is all there, as text
  await expect(output).toContainText(`${PAYLOAD}\n${PAYLOAD}\n`);
  await expect(output.locator('.stderr')).toHaveText(`${PAYLOAD}\n`);
  await expect(execs.nth(1)).toContainText(PAYLOAD);
  await context.close();
});

test('a box that prints a lot gets its first 256 KiB shown, and no more is read', async ({ page }) => {
  const flood = await call('POST', '/boxes', { image: IMAGE, name: boxName('flood'), cpu: 1, memory_mb: 128 }, 201);
  try {
    await runExec(flood.id, ['sh', '-c', "head -c 3000000 /dev/zero | tr '\\0' x"]);
    const { base, token } = target();
    await page.goto(`${base}ui?token=${token}`);
    await boxRow(page, flood.id).click();
    const output = page.locator('#boxes tr.detail pre.output');
    await expect(output).toContainText('[the page shows the first 256 KiB');
    const shown = (await output.innerText()).replace(/\[the page[^\]]*\]/, '').trim();
    expect(shown).toMatch(/^x+$/);
    expect(shown.length).toBe(256 * 1024);
    await page.waitForTimeout(1000);
    expect(await output.innerText()).not.toContain('exit code');
  } finally {
    await call('DELETE', `/boxes/${flood.id}?force=true`);
  }
});

