/**
 * How a box's active output (the BoxRun kernel's `application/vnd.boxrun.box-output+json`)
 * is shown: HTML and Markdown without script inline, sanitized as JupyterLab sanitizes
 * untrusted output; anything that needs script in a sandboxed frame of an opaque origin
 * (no cookies, no Jupyter API); anything else not at all.
 */

/** The MIME type the BoxRun kernel puts a box's active output under: `{data: bundle}`. */
export const MIME_TYPE = 'application/vnd.boxrun.box-output+json';

/** The most a frame may ask to be tall, in pixels; past it, it scrolls. */
export const MAX_FRAME_HEIGHT = 5000;

/** The message a frame's document posts to its parent with its height. */
export const HEIGHT_MESSAGE = 'boxrunFrameHeight';

/** Where HTML needs script: script elements, event handler attributes, `javascript:`. */
const ACTIVE_HTML = /<script\b|\son[a-z]+\s*=|javascript:/i;

/** What to show for a box's bundle. */
export type Plan =
  | { kind: 'inline'; mimeType: 'text/html' | 'text/markdown'; source: string }
  | { kind: 'frame'; body: string }
  | { kind: 'none'; mimeTypes: string[] };

/** The text of a bundle entry (a string, or lines as nbformat may save it). */
function text(value: unknown): string | null {
  if (typeof value === 'string') {
    return value;
  }
  if (Array.isArray(value) && value.every(line => typeof line === 'string')) {
    return value.join('');
  }
  return null;
}

/** The inner bundle of the BoxRun MIME type's value; `{}` for anything else. */
export function innerBundle(value: unknown): Record<string, unknown> {
  const data = (value as any)?.data;
  return data && typeof data === 'object' && !Array.isArray(data) ? data : {};
}

/**
 * What to show for `bundle`, in JupyterLab's order of preference (HTML, Markdown, then
 * JavaScript): HTML with script and JavaScript in a frame, the rest inline.
 */
export function plan(bundle: Record<string, unknown>): Plan {
  const html = text(bundle['text/html']);
  if (html !== null) {
    return ACTIVE_HTML.test(html)
      ? { kind: 'frame', body: html }
      : { kind: 'inline', mimeType: 'text/html', source: html };
  }
  const markdown = text(bundle['text/markdown']);
  if (markdown !== null) {
    return { kind: 'inline', mimeType: 'text/markdown', source: markdown };
  }
  const script = text(bundle['application/javascript'] ?? bundle['text/javascript']);
  if (script !== null) {
    return { kind: 'frame', body: scriptBody(script) };
  }
  return { kind: 'none', mimeTypes: Object.keys(bundle) };
}

/** JSON as a script literal: nothing in it can end the script element. */
function scriptLiteral(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/**
 * A body running `code` as the classic notebook ran `application/javascript`: with
 * `element`, the output's element, in scope; an error is shown there.
 */
export function scriptBody(code: string): string {
  return (
    '<div id="boxrun-output"></div><script>(function () {' +
    "var element = document.getElementById('boxrun-output');" +
    `try { new Function('element', ${scriptLiteral(code)})(element); }` +
    'catch (err) { element.textContent = String(err); }' +
    '})();</script>'
  );
}

/** Lab's look, passed into a frame (which sees none of Lab's CSS). */
export interface IFrameStyle {
  fontFamily: string;
  fontSize: string;
  color: string;
}

/**
 * The `srcdoc` of a frame showing `body`: it reports its height to the parent (which
 * sizes the frame to it) whenever its layout changes.
 */
export function frameDocument(body: string, style: IFrameStyle): string {
  const css =
    'body { margin: 0; display: flow-root; background: transparent;' +
    ` font-family: ${style.fontFamily}; font-size: ${style.fontSize};` +
    ` color: ${style.color}; }`;
  const report =
    '(function () {' +
    'var root = document.documentElement;' +
    `function report() { parent.postMessage({ ${HEIGHT_MESSAGE}: ` +
    'Math.ceil(root.getBoundingClientRect().height) }, "*"); }' +
    'new ResizeObserver(report).observe(root);' +
    "addEventListener('load', report);" +
    '})();';
  return (
    '<!DOCTYPE html><html><head><meta charset="utf-8">' +
    `<style>${css.replace(/</g, '\\3c ')}</style><script>${report}</script>` +
    `</head><body>${body}</body></html>`
  );
}

/** The height a frame asked for in a message's data, bounded; null if it asked nothing. */
export function frameHeight(data: unknown): number | null {
  const height = (data as any)?.[HEIGHT_MESSAGE];
  if (typeof height !== 'number' || !Number.isFinite(height)) {
    return null;
  }
  return Math.min(Math.max(Math.ceil(height), 0), MAX_FRAME_HEIGHT);
}
