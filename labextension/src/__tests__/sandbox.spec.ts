import { describe, expect, it } from 'vitest';

import {
  HEIGHT_MESSAGE,
  MAX_FRAME_HEIGHT,
  frameDocument,
  frameHeight,
  innerBundle,
  plan,
  scriptBody
} from '../sandbox';

const STYLE = { fontFamily: 'sans-serif', fontSize: '13px', color: 'black' };

describe('plan', () => {
  it('shows HTML without script inline', () => {
    const table = '<table class="dataframe"><tr><th>a</th><td>1</td></tr></table>';
    expect(plan({ 'text/html': table })).toEqual({
      kind: 'inline',
      mimeType: 'text/html',
      source: table
    });
  });

  it('joins HTML saved as lines', () => {
    expect(plan({ 'text/html': ['<b>', 'x</b>'] })).toMatchObject({ source: '<b>x</b>' });
  });

  it.each([
    '<script>alert(1)</script>',
    '<SCRIPT src="x.js"></SCRIPT>',
    '<img src=x onerror=alert(1)>',
    '<button onclick="go()">go</button>',
    '<a href="javascript:alert(1)">x</a>'
  ])('frames HTML that needs script: %s', html => {
    expect(plan({ 'text/html': html })).toEqual({ kind: 'frame', body: html });
  });

  it('prefers HTML to Markdown to JavaScript, as JupyterLab does', () => {
    expect(plan({ 'text/markdown': '*a*', 'text/html': '<i>a</i>' })).toMatchObject({
      mimeType: 'text/html'
    });
    expect(plan({ 'application/javascript': 'x', 'text/markdown': '*a*' })).toMatchObject({
      mimeType: 'text/markdown'
    });
  });

  it('frames JavaScript with `element` in scope', () => {
    const what = plan({ 'application/javascript': "element.textContent = '</script>'" });
    expect(what).toEqual({ kind: 'frame', body: scriptBody("element.textContent = '</script>'") });
    // The code is a string literal: it cannot close the script element early.
    const body = (what as { body: string }).body;
    expect(body.match(/<\/script>/g)).toHaveLength(1);
    expect(body).toContain("new Function('element', ");
  });

  it('shows nothing it has no safe renderer for', () => {
    expect(plan({ 'application/vnd.plotly.v1+json': {} })).toEqual({
      kind: 'none',
      mimeTypes: ['application/vnd.plotly.v1+json']
    });
  });
});

describe('innerBundle', () => {
  it('reads the kernel’s value and nothing else', () => {
    expect(innerBundle({ data: { 'text/html': 'x' } })).toEqual({ 'text/html': 'x' });
    for (const bad of [null, 'x', { data: 'x' }, { data: ['x'] }, {}]) {
      expect(innerBundle(bad)).toEqual({});
    }
  });
});

describe('frameDocument', () => {
  it('reports its height and holds the body', () => {
    const doc = frameDocument('<p>hi</p>', STYLE);
    expect(doc).toContain('<body><p>hi</p></body>');
    expect(doc).toContain(HEIGHT_MESSAGE);
    expect(doc).toContain('font-family: sans-serif; font-size: 13px; color: black;');
  });
});

describe('frameHeight', () => {
  it('bounds what a frame asks for', () => {
    expect(frameHeight({ [HEIGHT_MESSAGE]: 120.2 })).toBe(121);
    expect(frameHeight({ [HEIGHT_MESSAGE]: 1e9 })).toBe(MAX_FRAME_HEIGHT);
    expect(frameHeight({ [HEIGHT_MESSAGE]: -5 })).toBe(0);
    for (const bad of [null, 'x', {}, { [HEIGHT_MESSAGE]: 'x' }, { [HEIGHT_MESSAGE]: NaN }]) {
      expect(frameHeight(bad)).toBeNull();
    }
  });
});
