/**
 * A box's output in JupyterLab: JavaScript from a box runs in a sandboxed frame of an
 * opaque origin, where it cannot use the Jupyter API with the user's cookies; interactive
 * HTML+JS still works there; plain HTML (a pandas-like table) renders inline. The same
 * holds for the saved notebook reopened, trusted or not.
 */
import { FrameLocator, Locator, Page, expect, test } from '@playwright/test';

import {
  createNotebook,
  jupyter,
  kernelspecs,
  kernelReady,
  openNotebook,
  save,
  savedNotebook,
  server,
  shot,
  shutDownSessions
} from './helpers';

const FILE = 'box-output.ipynb';
const COPY = 'box-output-untrusted.ipynb';
const BOXRUN_MIME = 'application/vnd.boxrun.box-output+json';

/** Script that PUTs `name` through the Jupyter API with the page's `_xsrf` cookie. */
function attack(name: string): string {
  return `
let xsrf = 'no cookie';
try { xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || 'none'; }
catch (err) { xsrf = 'cookie refused'; }
fetch('/api/contents/${name}', {
  method: 'PUT', credentials: 'include',
  headers: {'X-XSRFToken': xsrf, 'Content-Type': 'application/json'},
  body: JSON.stringify({type: 'file', format: 'text', content: 'from the box'})
}).then(r => 'status ' + r.status, err => 'failed ' + err)
  .then(how => {
    if (typeof element !== 'undefined') element.textContent = 'attempted (' + xsrf + '): ' + how;
  });
`;
}

const CELLS = [
  `from IPython.display import Javascript, display\ndisplay(Javascript(${JSON.stringify(
    attack('pwned.txt')
  )}))`,
  `from IPython.display import HTML, display
display(HTML('''<canvas id="chart" width="240" height="90"></canvas>
<div><button id="more">More</button> <span id="count">0 clicks</span></div>
<script>
const ctx = document.getElementById('chart').getContext('2d');
let bars = [30, 60, 45, 80];
function draw() {
  ctx.clearRect(0, 0, 240, 90);
  ctx.fillStyle = 'steelblue';
  bars.forEach((h, i) => ctx.fillRect(10 + i * 45, 90 - h, 35, h));
}
draw();
let clicks = 0;
document.getElementById('more').onclick = () => {
  clicks += 1;
  bars = bars.map(h => Math.max(5, 90 - h));
  draw();
  document.getElementById('count').textContent = clicks + ' clicks';
};
</script>'''))`,
  `class Frame:
    def _repr_html_(self):
        return ('<div><style scoped>.dataframe tbody tr th {vertical-align: top;}</style>'
                '<table border="1" class="dataframe"><thead><tr style="text-align: right;">'
                '<th></th><th>name</th><th>size</th></tr></thead><tbody>'
                '<tr><th>0</th><td>alpha</td><td>1</td></tr>'
                '<tr><th>1</th><td>beta</td><td>2</td></tr></tbody></table></div>')
Frame()`
];

test.describe.configure({ mode: 'serial' });

test.afterEach(async () => {
  await shutDownSessions();
});

test.afterAll(async () => {
  for (const file of [FILE, COPY, 'pwned.txt', 'control.txt']) {
    await contents('DELETE', file);
  }
});

/** The status of a GET (without content) or DELETE of file `name` in the Jupyter root. */
async function contents(method: 'GET' | 'DELETE', name: string): Promise<number> {
  const { url, token } = server();
  const response = await fetch(`${url}api/contents/${name}?content=0`, {
    method,
    headers: { Authorization: `token ${token}` }
  });
  await response.text();
  return response.status;
}

function output(notebook: Locator, cell: number): Locator {
  return notebook.locator('.jp-CodeCell').nth(cell).locator('.jp-OutputArea-output');
}

function frame(notebook: Locator, cell: number): FrameLocator {
  return output(notebook, cell).frameLocator('iframe.jp-BoxRun-frame');
}

/** The three outputs as they should be: the attack ran and failed, the chart responds,
 * the table is inline with Lab's styles. */
async function checkOutputs(page: Page, notebook: Locator) {
  // The script ran, could not read the cookie, and its request failed.
  await expect(frame(notebook, 0).locator('#boxrun-output')).toContainText(
    'attempted (cookie refused): failed',
    { timeout: 180_000 }
  );
  const chart = frame(notebook, 1);
  await expect(chart.locator('#count')).toHaveText('0 clicks');
  await chart.locator('#more').click();
  await expect(chart.locator('#count')).toHaveText('1 clicks');
  // The frame is as tall as its content (canvas and button), not a default 150 px box.
  const height = await output(notebook, 1).locator('iframe').evaluate(f => f.clientHeight);
  expect(height).toBeGreaterThan(100);
  expect(height).toBeLessThan(150);

  await expect(output(notebook, 2)).toHaveClass(/jp-RenderedHTML\b/);
  const table = output(notebook, 2).locator('table.dataframe');
  await expect(table).toBeVisible();
  await expect(table.locator('tbody tr')).toHaveCount(2);
  await expect(output(notebook, 2).locator('iframe')).toHaveCount(0);
  // Lab's table style applies (right-aligned cells), as for any HTML output.
  expect(await table.locator('td').first().evaluate(td => getComputedStyle(td).textAlign)).toBe(
    'right'
  );
  // The page itself is untouched, and the box's script never saw its cookie.
  expect(await contents('GET', 'pwned.txt')).toBe(404);
  expect(await page.evaluate(() => document.cookie)).toContain('_xsrf');
}

test('a box’s script runs sandboxed: no Jupyter API, still interactive', async ({ page }) => {
  test.skip(!(await kernelspecs()).boxrun, 'the boxrun kernel is not installed');
  test.setTimeout(400_000);
  await createNotebook(FILE, 'boxrun', CELLS);
  let notebook = await openNotebook(page, FILE);
  await kernelReady(page);

  // The attack works from Jupyter's own origin: the test would see it if it got there.
  await page.evaluate(code => new Function(code)(), attack('control.txt'));
  await expect
    .poll(() => contents('GET', 'control.txt'))
    .toBe(200);

  await page.evaluate(() => (window as any).jupyterapp.commands.execute('notebook:run-all-cells'));
  await checkOutputs(page, notebook);
  await shot(page, 'box-output.png', notebook);
  await shot(page, 'box-output-table.png', output(notebook, 2));

  // Saved, the box's output keeps its BoxRun type: no script a Lab without us would run.
  await save(page);
  let saved: any;
  await expect(async () => {
    saved = await savedNotebook(FILE);
    expect(saved.cells[2].outputs.length).toBeGreaterThan(0);
  }).toPass({ timeout: 30_000 });
  for (const cell of saved.cells) {
    for (const out of cell.outputs) {
      expect(Object.keys(out.data ?? {})).not.toContain('text/html');
      expect(Object.keys(out.data ?? {})).not.toContain('application/javascript');
      expect(Object.keys(out.data ?? {})).toContain(BOXRUN_MIME);
    }
  }
  await shutDownSessions();

  // Reopened from a copy Lab never signed (untrusted), it renders the same way.
  const put = await jupyter('PUT', `/api/contents/${COPY}`, { type: 'notebook', content: saved });
  expect(put.status).toBeLessThan(300);
  notebook = await openNotebook(page, COPY);
  await checkOutputs(page, notebook);
  await shot(page, 'box-output-reopened.png', notebook);
});

test('Notebook 7 renders a box’s output the same way', async ({ page }) => {
  const { url, token } = server();
  const tree = await fetch(`${url}tree?token=${token}`);
  await tree.text();
  test.skip(tree.status !== 200, 'Notebook 7 (the notebook package) is not installed');
  test.skip((await contents('GET', COPY)) !== 200, 'the first test saved no notebook');
  test.setTimeout(300_000);
  await page.goto(`${url}notebooks/${COPY}?token=${token}`);
  const notebook = page.locator('.jp-NotebookPanel');
  await expect(notebook.locator('.jp-Cell').first()).toBeVisible({ timeout: 60_000 });
  await checkOutputs(page, notebook);
  await shot(page, 'box-output-notebook7.png', notebook);
});
