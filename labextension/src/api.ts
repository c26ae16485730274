/** The BoxRun API client: JSON calls and event streams through Jupyter's auth. */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ISSEEvent, SSEParser, readEventStream } from './sse';
import {
  IBox,
  IBoxRequest,
  IExec,
  IImage,
  IInfo,
  IMetrics,
  ISnapshot,
  ISession
} from './types';

/** An API error, with the server's `{code, message}`. */
export class BoxRunError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number
  ) {
    super(message);
    this.name = 'BoxRunError';
  }
}

/** The error of a failed response: the API's `{code, message}` when the body has them. */
export function parseError(status: number, body: string, statusText = ''): BoxRunError {
  try {
    const json = JSON.parse(body);
    if (json && typeof json === 'object') {
      const code = typeof json.code === 'string' ? json.code : undefined;
      const message =
        typeof json.message === 'string'
          ? json.message
          : typeof json.reason === 'string'
            ? json.reason
            : undefined;
      if (code || message) {
        return new BoxRunError(code ?? httpCode(status), message ?? statusText, status);
      }
    }
  } catch {
    // not JSON: fall through
  }
  const text = body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  const message = text && text.length < 300 ? text : statusText || `HTTP ${status}`;
  return new BoxRunError(httpCode(status), message, status);
}

function httpCode(status: number): string {
  switch (status) {
    case 401:
      return 'UNAUTHORIZED';
    case 403:
      return 'FORBIDDEN';
    case 404:
      return 'NOT_FOUND';
    case 503:
      return 'UNAVAILABLE';
    default:
      return status === 0 ? 'NETWORK_ERROR' : 'RUNTIME_ERROR';
  }
}

/** A readable sentence for any error thrown by the client (or anything else). */
export function errorText(err: unknown): string {
  if (err instanceof BoxRunError) {
    return `${err.message} (${err.code})`;
  }
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}

/** Options of {@link BoxRunClient.stream}. */
export interface IStreamOptions {
  /** Stops the stream (and its reconnects). */
  signal: AbortSignal;
  /** Called once the server has accepted the stream (after each reconnect too). */
  onOpen?: () => void;
  /** Reconnect after the stream ends or fails (default true), with `Last-Event-ID`. */
  reconnect?: boolean;
  /** Milliseconds before reconnecting (default 2000). */
  retryMs?: number;
}

/** Calls the BoxRun API under `{baseUrl}boxrun/v1/`. */
export class BoxRunClient {
  readonly serverSettings: ServerConnection.ISettings;

  constructor(settings?: ServerConnection.ISettings) {
    this.serverSettings = settings ?? ServerConnection.makeSettings();
  }

  /** The absolute URL of an API path such as `/boxes`. */
  url(path: string): string {
    return URLExt.join(this.serverSettings.baseUrl, 'boxrun', 'v1', path);
  }

  /** A JSON request; throws {@link BoxRunError} on an error status. */
  async request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const headers = new Headers(init.headers);
    if (init.body !== undefined && !headers.has('Content-Type')) {
      headers.set('Content-Type', 'application/json');
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        this.url(path),
        { ...init, headers },
        this.serverSettings
      );
    } catch (err) {
      throw new BoxRunError('NETWORK_ERROR', `cannot reach the server: ${errorText(err)}`, 0);
    }
    const text = await response.text();
    if (!response.ok) {
      throw parseError(response.status, text, response.statusText);
    }
    return (text ? JSON.parse(text) : null) as T;
  }

  info(): Promise<IInfo> {
    return this.request('/info');
  }
  images(): Promise<IImage[]> {
    return this.request('/images');
  }
  boxes(): Promise<IBox[]> {
    return this.request('/boxes');
  }
  box(id: string): Promise<IBox> {
    return this.request(`/boxes/${encodeURIComponent(id)}`);
  }
  createBox(body: IBoxRequest, signal?: AbortSignal): Promise<IBox> {
    return this.request('/boxes', { method: 'POST', body: JSON.stringify(body), signal });
  }
  startBox(id: string): Promise<IBox> {
    return this.request(`/boxes/${encodeURIComponent(id)}:start`, { method: 'POST' });
  }
  stopBox(id: string): Promise<IBox> {
    return this.request(`/boxes/${encodeURIComponent(id)}:stop`, { method: 'POST' });
  }
  removeBox(id: string, force = false): Promise<{ ok: boolean }> {
    const query = force ? '?force=true' : '';
    return this.request(`/boxes/${encodeURIComponent(id)}${query}`, { method: 'DELETE' });
  }
  execs(boxId: string): Promise<IExec[]> {
    return this.request(`/boxes/${encodeURIComponent(boxId)}/execs`);
  }
  sessions(boxId: string): Promise<ISession[]> {
    return this.request(`/boxes/${encodeURIComponent(boxId)}/sessions`);
  }
  snapshots(boxId: string): Promise<ISnapshot[]> {
    return this.request(`/boxes/${encodeURIComponent(boxId)}/snapshots`);
  }
  deleteSnapshot(boxId: string, snapshot: string): Promise<unknown> {
    const path = `/boxes/${encodeURIComponent(boxId)}/snapshots/${encodeURIComponent(snapshot)}`;
    return this.request(path, { method: 'DELETE' });
  }
  metrics(boxId: string): Promise<IMetrics> {
    return this.request(`/boxes/${encodeURIComponent(boxId)}/metrics`);
  }

  /**
   * Follow an SSE stream of the API until `options.signal` aborts. Streams that end are
   * reopened (with `Last-Event-ID`) unless `reconnect` is false. Resolves when done;
   * rejects with a {@link BoxRunError} if the server refuses the stream (a 404 means
   * this server has no such stream), so callers can fall back.
   */
  async stream(
    path: string,
    onEvent: (event: ISSEEvent) => void,
    options: IStreamOptions
  ): Promise<void> {
    const { signal, reconnect = true, retryMs = 2000 } = options;
    const parser = new SSEParser();
    let opened = false;
    while (!signal.aborted) {
      const headers = new Headers({ Accept: 'text/event-stream' });
      if (parser.lastEventId !== null) {
        headers.set('Last-Event-ID', parser.lastEventId);
      }
      try {
        const response = await ServerConnection.makeRequest(
          this.url(path),
          { headers, signal, cache: 'no-store' },
          this.serverSettings
        );
        if (!response.ok) {
          const error = parseError(response.status, await response.text(), response.statusText);
          if (!opened || response.status === 404 || response.status === 400) {
            throw error; // refused: no retry
          }
        } else if (response.body) {
          opened = true;
          options.onOpen?.();
          await readEventStream(response.body, onEvent, parser);
        }
      } catch (err) {
        if (signal.aborted) {
          return;
        }
        if (err instanceof BoxRunError) {
          throw err;
        }
        // a network error: retry below
      }
      if (!reconnect || signal.aborted) {
        return;
      }
      await sleep(retryMs, signal);
    }
  }

  /** The WebSocket URL of a box's terminal (with the token when there is one). */
  attachUrl(boxId: string, cols: number, rows: number): string {
    const settings = this.serverSettings;
    let url = URLExt.join(settings.wsUrl, 'boxrun', 'v1', 'boxes', encodeURIComponent(boxId), 'attach');
    const query: Record<string, string> = { cols: String(cols), rows: String(rows) };
    if (settings.token) {
      query.token = settings.token;
    }
    url += URLExt.objectToQueryString(query);
    return url;
  }
}

/** Resolves after `ms` milliseconds, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });
}
