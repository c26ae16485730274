/** The attach WebSocket's JSON control messages (text frames). */

export type Control =
  | { type: 'exit'; code: number | null }
  | { type: 'error'; code: string; message: string }
  | { type: 'unknown'; raw: string };

/** Parse a server → client text frame: `exit`, `error`, or anything else as `unknown`. */
export function parseControl(text: string): Control {
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    return { type: 'unknown', raw: text };
  }
  if (json?.type === 'exit') {
    return { type: 'exit', code: typeof json.code === 'number' ? json.code : null };
  }
  if (json?.type === 'error') {
    return {
      type: 'error',
      code: String(json.code ?? 'RUNTIME_ERROR'),
      message: String(json.message ?? 'the terminal failed')
    };
  }
  return { type: 'unknown', raw: text };
}
