import { describe, expect, it } from 'vitest';

import { SSEParser, readEventStream } from '../sse';

describe('SSEParser', () => {
  it('parses events split anywhere across chunks', () => {
    const text =
      ': stream open\n\nid: 7\nevent: log\ndata: {"stream": "stdout", "data": "hi\\n", "seq": 0}\n\n' +
      'event: exit\ndata: {"stream": null, "data": "{\\"exit_code\\": 0}", "seq": 1}\n\n';
    for (let split = 0; split <= text.length; split++) {
      const parser = new SSEParser();
      const events = [...parser.feed(text.slice(0, split)), ...parser.feed(text.slice(split))];
      expect(events.map(e => e.event)).toEqual(['log', 'exit']);
      expect(JSON.parse(events[0].data)).toEqual({ stream: 'stdout', data: 'hi\n', seq: 0 });
      expect(events[0].id).toBe('7');
      expect(events[1].id).toBe('7'); // the last id carries over
      expect(parser.lastEventId).toBe('7');
    }
  });

  it('handles CRLF and CR line ends, even split between CR and LF', () => {
    const parser = new SSEParser();
    const events = [
      ...parser.feed('data: a\r'),
      ...parser.feed('\ndata: b\r\n\r'),
      ...parser.feed('\ndata: c\r\r')
    ];
    expect(events.map(e => e.data)).toEqual(['a\nb', 'c']);
  });

  it('joins multi-line data, defaults the type to message, ignores comments and unknown fields', () => {
    const parser = new SSEParser();
    const events = parser.feed(': keep-alive\n\nfoo: bar\ndata:x\ndata: y\nretry: 3000\n\n');
    expect(events).toEqual([{ event: 'message', data: 'x\ny', id: null, retry: 3000 }]);
  });

  it('dispatches nothing for an event without data', () => {
    expect(new SSEParser().feed('event: ping\n\n')).toEqual([]);
  });
});

describe('readEventStream', () => {
  function body(chunks: string[]): ReadableStream<Uint8Array> {
    const encoder = new TextEncoder();
    return new ReadableStream({
      start(controller) {
        for (const chunk of chunks) {
          controller.enqueue(encoder.encode(chunk));
        }
        controller.close();
      }
    });
  }

  it('reads every complete event and drops one the stream ended inside', async () => {
    const seen: string[] = [];
    await readEventStream(body(['data: é', 'té\n\ndata: one\n', '\ndata: cut']), e =>
      seen.push(e.data)
    );
    expect(seen).toEqual(['été', 'one']);
  });

  it('decodes UTF-8 split across chunks', async () => {
    const bytes = new TextEncoder().encode('data: ✓\n\n');
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 7));
        controller.enqueue(bytes.slice(7));
        controller.close();
      }
    });
    const seen: string[] = [];
    await readEventStream(stream, e => seen.push(e.data));
    expect(seen).toEqual(['✓']);
  });
});
