/**
 * A Server-Sent Events parser (the WHATWG event-stream format), fed text chunks as
 * they arrive from a streaming `fetch`, so streams can carry Jupyter's auth headers.
 */

/** One dispatched event. */
export interface ISSEEvent {
  /** The `event:` field, `message` when absent. */
  event: string;
  /** The `data:` lines joined with newlines. */
  data: string;
  /** The last `id:` seen on the stream (carried over between events), or null. */
  id: string | null;
  /** The `retry:` field of this event, in milliseconds, if any. */
  retry?: number;
}

/** Incremental parser: `feed()` text, get back the events completed by it. */
export class SSEParser {
  private _buffer = '';
  private _data: string[] = [];
  private _event = '';
  private _retry: number | undefined = undefined;
  private _hasData = false;
  private _afterCR = false;
  /** The stream's last event id (what to send back as `Last-Event-ID`). */
  lastEventId: string | null = null;

  /** Parse a chunk; returns the events it completed, in order. */
  feed(chunk: string): ISSEEvent[] {
    if (chunk === '') {
      return [];
    }
    if (this._afterCR && chunk.startsWith('\n')) {
      chunk = chunk.slice(1); // the LF of a CRLF split between chunks
    }
    this._buffer += chunk;
    const events: ISSEEvent[] = [];
    // A line ends at CRLF, LF or CR; keep the unterminated tail for the next chunk.
    const lines = this._buffer.split(/\r\n|\n|\r/);
    this._buffer = lines.pop() ?? '';
    this._afterCR = this._buffer === '' && chunk.endsWith('\r');
    for (const line of lines) {
      const event = this._line(line);
      if (event) {
        events.push(event);
      }
    }
    return events;
  }

  private _line(line: string): ISSEEvent | null {
    if (line === '') {
      return this._dispatch();
    }
    if (line.startsWith(':')) {
      return null; // a comment (keep-alive)
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    switch (field) {
      case 'data':
        this._data.push(value);
        this._hasData = true;
        break;
      case 'event':
        this._event = value;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.lastEventId = value;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) {
          this._retry = parseInt(value, 10);
        }
        break;
      default:
        break; // unknown fields are ignored
    }
    return null;
  }

  private _dispatch(): ISSEEvent | null {
    const hasData = this._hasData;
    const event: ISSEEvent = {
      event: this._event || 'message',
      data: this._data.join('\n'),
      id: this.lastEventId
    };
    if (this._retry !== undefined) {
      event.retry = this._retry;
    }
    this._data = [];
    this._event = '';
    this._retry = undefined;
    this._hasData = false;
    return hasData ? event : null;
  }
}

/**
 * Read an event-stream response body to its end, calling `onEvent` per event.
 * Resolves when the server closes the stream; rejects on a network error or abort.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: ISSEEvent) => void,
  parser: SSEParser = new SSEParser()
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
        onEvent(event);
      }
    }
    // An event the stream ended in the middle of is dropped, as the format says.
    for (const event of parser.feed(decoder.decode())) {
      onEvent(event);
    }
  } finally {
    reader.releaseLock();
  }
}
