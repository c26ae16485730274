/**
 * A browser's EventSource on a finished exec stops reconnecting: after the server closes
 * the stream at `exit`, the browser reconnects with `Last-Event-ID` set to the exit
 * event's id, gets 204 No Content at once, and stays closed (issue 11, point 7).
 */
import { expect, test } from '@playwright/test';

import { IMAGE, api, server } from './helpers';

test('an EventSource on a finished exec gets its events once and stops', async ({ page }) => {
  const box = await api('POST', '/boxes', { image: IMAGE, cpu: 1, memory_mb: 256 });
  expect(box.status, JSON.stringify(box.json)).toBe(201);
  try {
    const exec = await api('POST', `/boxes/${box.json.id}/exec`, {
      cmd: ['sh', '-c', 'echo one; echo two']
    });
    expect(exec.status).toBe(201);
    const events = `boxrun/v1/boxes/${box.json.id}/exec/${exec.json.id}/events`;
    const requests: Promise<{ lastEventId: string | null; status: number }>[] = [];
    page.on('response', response => {
      if (response.url().includes(events)) {
        requests.push(
          response
            .request()
            .headerValue('last-event-id')
            .then(lastEventId => ({ lastEventId, status: response.status() }))
        );
      }
    });
    const { url, token } = server();
    // a page of the same origin whose CSP allows connections (API replies forbid them)
    await page.goto(`${url}boxrun/ui?token=${token}`);

    const seen = await page.evaluate(
      async ({ path, token }) => {
        const got: string[] = [];
        const source = new EventSource(`/${path}?token=${token}`);
        for (const name of ['log', 'exit']) {
          source.addEventListener(name, e => got.push(`${name}:${(e as MessageEvent).lastEventId}`));
        }
        // The stream closes after `exit`; the browser reconnects (after its retry delay,
        // 3 s by default) with Last-Event-ID, and a 204 makes it give up for good.
        const deadline = Date.now() + 15_000;
        while (source.readyState !== EventSource.CLOSED && Date.now() < deadline) {
          await new Promise(r => setTimeout(r, 100));
        }
        const state = source.readyState;
        await new Promise(r => setTimeout(r, 4_000)); // no further attempt meanwhile
        source.close();
        return { got, state };
      },
      { path: events, token }
    );

    const names = seen.got.map(e => e.split(':')[0]);
    expect(names.filter(n => n === 'exit')).toEqual(['exit']); // once, not replayed
    expect(names[names.length - 1]).toBe('exit');
    expect(names[0]).toBe('log');
    expect(seen.state).toBe(2); // EventSource.CLOSED, by the server's 204
    const exitId = seen.got[seen.got.length - 1].split(':')[1];
    expect(await Promise.all(requests)).toEqual([
      { lastEventId: null, status: 200 },
      { lastEventId: exitId, status: 204 }
    ]);
  } finally {
    await api('DELETE', `/boxes/${box.json.id}?force=true`);
  }
});
