/**
 * The BoxRun output renderer (a JupyterLab MIME extension, so Notebook 7 loads it too):
 * renders the BoxRun kernel's `application/vnd.boxrun.box-output+json` as planned in
 * ./sandbox, so a box's output never runs script in the Jupyter origin.
 */

import { renderHTML, renderMarkdown } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { MIME_TYPE, frameDocument, frameHeight, innerBundle, plan } from './sandbox';

/** Renders a box's bundle: sanitized inline, in a sandboxed frame, or a note why not. */
export class RenderedBoxOutput extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this._options = options;
    this.addClass('jp-BoxRun-output');
    window.addEventListener('message', this._onMessage);
  }

  dispose(): void {
    window.removeEventListener('message', this._onMessage);
    super.dispose();
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const what = plan(innerBundle(model.data[MIME_TYPE]));
    const host = this.node;
    host.textContent = '';
    this._frame = null;
    this.removeClass('jp-RenderedHTMLCommon');
    this.removeClass('jp-RenderedHTML');
    this.removeClass('jp-RenderedMarkdown');
    const { sanitizer, resolver, linkHandler, latexTypesetter } = this._options;
    if (what.kind === 'inline') {
      // As JupyterLab renders untrusted HTML and Markdown, with its classes and styles.
      const markdown = what.mimeType === 'text/markdown';
      this.addClass('jp-RenderedHTMLCommon');
      this.addClass(markdown ? 'jp-RenderedMarkdown' : 'jp-RenderedHTML');
      const common = {
        host,
        source: what.source,
        trusted: false,
        sanitizer,
        resolver,
        linkHandler,
        shouldTypeset: this.isAttached,
        latexTypesetter,
        translator: this._options.translator
      };
      await (markdown
        ? renderMarkdown({ ...common, markdownParser: this._options.markdownParser ?? null })
        : renderHTML(common));
    } else if (what.kind === 'frame') {
      const frame = document.createElement('iframe');
      // Scripts, but an opaque origin: no cookies, storage or same-origin requests, no
      // navigating the page, no pop-ups.
      frame.setAttribute('sandbox', 'allow-scripts');
      frame.setAttribute('referrerpolicy', 'no-referrer');
      frame.className = 'jp-BoxRun-frame';
      Object.assign(frame.style, { display: 'block', width: '100%', height: '0', border: '0' });
      // Lab's theme variables (the frame sees none of Lab's CSS).
      const theme = getComputedStyle(document.documentElement);
      frame.srcdoc = frameDocument(what.body, {
        fontFamily: theme.getPropertyValue('--jp-content-font-family') || 'sans-serif',
        fontSize: theme.getPropertyValue('--jp-content-font-size1') || '14px',
        color: theme.getPropertyValue('--jp-content-font-color1') || 'inherit'
      });
      this._frame = frame;
      host.appendChild(frame);
    } else {
      const note = document.createElement('div');
      note.className = 'jp-BoxRun-outputNote';
      note.style.color = 'var(--jp-ui-font-color2)';
      note.textContent =
        `Output from a box (${what.mimeTypes.join(', ') || 'empty'}) that is not shown: ` +
        'its renderer would run in the Jupyter page.';
      host.appendChild(note);
    }
  }

  private _onMessage = (event: MessageEvent): void => {
    if (this._frame === null || event.source !== this._frame.contentWindow) {
      return;
    }
    const height = frameHeight(event.data);
    if (height !== null) {
      this._frame.style.height = `${height}px`;
    }
  };

  private _options: IRenderMime.IRendererOptions;
  private _frame: HTMLIFrameElement | null = null;
}

/** The renderer factory: safe, so it also renders outputs of untrusted notebooks. */
export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [MIME_TYPE],
  // Ahead of text/html (50) and the images, behind ipywidgets' widget view (0).
  defaultRank: 40,
  createRenderer: options => new RenderedBoxOutput(options)
};

const extension: IRenderMime.IExtension = {
  id: 'boxrun-jupyter:box-output',
  description: "Renders a box's HTML and script output sanitized or in a sandboxed frame.",
  rendererFactory,
  rank: 40,
  dataType: 'json'
};

export default extension;
