/** A main-area terminal into a box: xterm.js over the attach WebSocket. */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { FitAddon } from '@xterm/addon-fit';
import { ITheme, Terminal } from '@xterm/xterm';

import { BoxRunClient } from './api';
import { parseControl } from './control';

/** The state of a terminal's connection, shown in its tab and status line. */
export type TerminalState = 'connecting' | 'open' | 'exited' | 'error' | 'closed';

export class BoxTerminal extends Widget {
  constructor(
    private _client: BoxRunClient,
    readonly boxId: string,
    readonly boxLabel: string
  ) {
    super();
    this.addClass('jp-BoxRun-terminalWidget');
    this.title.label = `${boxLabel} (terminal)`;
    this.title.caption = `A shell in the box ${boxLabel} (${boxId})`;
    this.title.closable = true;
    this._host = document.createElement('div');
    this._host.className = 'jp-BoxRun-terminalHost';
    this._status = document.createElement('div');
    this._status.className = 'jp-BoxRun-terminalStatus';
    this.node.append(this._host, this._status);
    this._term = new Terminal({
      cursorBlink: true,
      fontFamily: cssVar('--jp-code-font-family', 'monospace'),
      fontSize: 13,
      scrollback: 5000,
      theme: terminalTheme()
    });
    this._term.loadAddon(this._fit);
    this._term.onData(data => this._send(new TextEncoder().encode(data)));
    this._term.onBinary(data =>
      this._send(Uint8Array.from(data, c => c.charCodeAt(0) & 0xff))
    );
    this._term.onResize(({ cols, rows }) => this._sendResize(cols, rows));
    this._setState('connecting', 'connecting…');
  }

  /** Where the connection stands. */
  get state(): TerminalState {
    return this._state;
  }

  /** The shell's exit code, once it has exited. */
  get exitCode(): number | null {
    return this._exitCode;
  }

  /** Re-read the colours from the JupyterLab theme (on a theme change). */
  updateTheme(): void {
    this._term.options.theme = terminalTheme();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._socket?.close();
    this._term.dispose();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this._opened) {
      this._opened = true;
      this._term.open(this._host);
      this._fitNow();
      this._connect();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._fitNow();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this._fitNow();
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    this._term.focus();
  }

  private _fitNow(): void {
    if (!this._opened || !this.isVisible) {
      return;
    }
    try {
      this._fit.fit(); // fires onResize, which tells the server
    } catch {
      // not laid out yet
    }
  }

  private _connect(): void {
    const url = this._client.attachUrl(this.boxId, this._term.cols, this._term.rows);
    const socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    this._socket = socket;
    socket.onopen = () => {
      this._setState('open', '');
      this._sendResize(this._term.cols, this._term.rows);
      this._term.focus();
    };
    socket.onmessage = event => {
      if (typeof event.data === 'string') {
        this._onControl(event.data);
      } else {
        this._term.write(new Uint8Array(event.data as ArrayBuffer));
      }
    };
    socket.onclose = event => {
      if (this._state === 'connecting') {
        this._setState(
          'error',
          `Could not connect to the box's terminal (WebSocket closed, code ${event.code}).`
        );
      } else if (this._state === 'open') {
        this._setState('closed', 'Disconnected from the box.');
        this._term.write('\r\n\x1b[2m[disconnected]\x1b[0m\r\n');
      }
    };
  }

  private _onControl(text: string): void {
    const control = parseControl(text);
    if (control.type === 'exit') {
      this._exitCode = control.code;
      this._setState('exited', `The shell exited with code ${control.code}.`);
      this._term.write(`\r\n\x1b[2m[the shell exited with code ${control.code}]\x1b[0m\r\n`);
    } else if (control.type === 'error') {
      this._setState('error', `${control.message} (${control.code})`);
      this._term.write(`\r\n\x1b[31m${control.message}\x1b[0m\r\n`);
    }
  }

  private _send(data: Uint8Array): void {
    if (this._socket?.readyState === WebSocket.OPEN && this._state === 'open') {
      this._socket.send(data);
    }
  }

  private _sendResize(cols: number, rows: number): void {
    if (this._socket?.readyState === WebSocket.OPEN) {
      this._socket.send(JSON.stringify({ type: 'resize', cols, rows }));
    }
  }

  private _setState(state: TerminalState, message: string): void {
    this._state = state;
    this.node.dataset.state = state;
    this._status.textContent = message;
    this._status.hidden = !message;
    const suffix =
      state === 'exited' ? ' [exited]' : state === 'error' || state === 'closed' ? ' [closed]' : '';
    this.title.label = `${this.boxLabel} (terminal)${suffix}`;
    requestAnimationFrame(() => this._fitNow());
  }

  private _host: HTMLDivElement;
  private _status: HTMLDivElement;
  private _term: Terminal;
  private _fit = new FitAddon();
  private _socket: WebSocket | null = null;
  private _opened = false;
  private _state: TerminalState = 'connecting';
  private _exitCode: number | null = null;
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

/** xterm colours from the current JupyterLab theme's CSS variables. */
function terminalTheme(): ITheme {
  const style = getComputedStyle(document.body);
  const v = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  const dark = document.body.dataset.jpThemeLight === 'false';
  return {
    background: v('--jp-layout-color0', dark ? '#111111' : '#ffffff'),
    foreground: v('--jp-ui-font-color0', dark ? '#ffffff' : '#000000'),
    cursor: v('--jp-ui-font-color0', dark ? '#ffffff' : '#000000'),
    cursorAccent: v('--jp-layout-color0', dark ? '#111111' : '#ffffff'),
    selectionBackground: dark ? 'rgba(255, 255, 255, 0.3)' : 'rgba(0, 0, 0, 0.2)'
  };
}
