/** Pure formatting helpers for the panel: sizes, durations, CPU, names. */

import { IBox, IExec, ISession } from './types';

/** `1536` → `1.5 KiB`; null → `–`. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) {
    return '–';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** Megabytes as the API counts them: `1024` → `1 GiB`, `512` → `512 MiB`. */
export function formatMemoryMb(mb: number | null | undefined): string {
  if (mb === null || mb === undefined) {
    return '–';
  }
  if (mb < 1024) {
    return `${mb} MiB`;
  }
  const gib = mb / 1024;
  return Number.isInteger(gib) ? `${gib} GiB` : `${gib.toFixed(1)} GiB`;
}

/** What stands between a box and the host, in words, from `/v1/info`'s `isolation`. */
export function formatIsolation(isolation: string | null | undefined): string {
  const words: Record<string, string> = {
    vm: 'micro-VM',
    gvisor: 'gVisor user-space kernel',
    namespace: 'namespace sandbox (shared kernel)'
  };
  return `${(isolation && words[isolation]) || isolation || '?'} isolation`;
}

/** CPU use in percent of one core: `12.34` → `12%`, `0.4` → `0.4%`, null → `–`. */
export function formatCpu(percent: number | null | undefined): string {
  if (percent === null || percent === undefined || !Number.isFinite(percent)) {
    return '–';
  }
  return percent < 1 && percent > 0 ? `${percent.toFixed(1)}%` : `${Math.round(percent)}%`;
}

/** Milliseconds as `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) {
    return '–';
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  const s = ms / 1000;
  if (s < 60) {
    return `${s.toFixed(1)} s`;
  }
  const minutes = Math.floor(s / 60);
  if (minutes < 60) {
    return `${minutes} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  }
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** Milliseconds between two RFC 3339 times; `end` null means still running (until `now`). */
export function elapsed(
  start: string | null | undefined,
  end: string | null | undefined,
  now: number = Date.now()
): number | null {
  if (!start) {
    return null;
  }
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : now;
  return Number.isNaN(from) || Number.isNaN(to) ? null : Math.max(0, to - from);
}

/**
 * A name as a head and a tail for a middle ellipsis: the head may shrink (cut with an
 * ellipsis), the tail (up to `tail` characters, a third of a shorter name) stays, so
 * `jupyter-<kernel id>` boxes, or `analysis-1` and `analysis-2`, still look different.
 */
export function splitName(name: string, tail = 8): [string, string] {
  const keep = Math.min(tail, Math.floor(name.length / 3));
  return keep < 2 ? [name, ''] : [name.slice(0, -keep), name.slice(-keep)];
}

/** How long ago `iso` was, shortly: `40 s`, `5 min`, `3 h`, `2 d` (`–` if unknown). */
export function formatAge(iso: string | null | undefined, now: number = Date.now()): string {
  const at = iso ? Date.parse(iso) : NaN;
  if (!Number.isFinite(at)) {
    return '–';
  }
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min`;
  }
  return s < 86400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86400)} d`;
}

/** The last part of a path: `work/a.ipynb` → `a.ipynb`. */
export function baseName(path: string): string {
  return path.split('/').filter(Boolean).pop() ?? path;
}

/** A notebook's name as a kernel box's label: without `.ipynb`. */
export function notebookLabel(name: string): string {
  return name.replace(/\.ipynb$/i, '');
}

/** How a box is shown: its name, else its id. */
export function boxLabel(box: Pick<IBox, 'id' | 'name'>): string {
  return box.name || box.id;
}

/**
 * The names the box of a BoxRun kernel may have: `jupyter-<kernel id>` (boxrun_kernel's
 * default `box_name`, cut at 63 characters), or `kernel-<first 8 chars of the id>`.
 */
export function kernelBoxNames(kernelId: string): string[] {
  return [`jupyter-${kernelId}`.slice(0, 63), `kernel-${kernelId.slice(0, 8)}`];
}

/** The kernel id (or id prefix) a kernel's box is named after, or null. */
export function kernelIdPrefixOf(box: Pick<IBox, 'name'>): string | null {
  const match = /^(?:jupyter-([0-9a-f-]{8,})|kernel-([0-9a-f-]{8}))$/i.exec(box.name ?? '');
  return match ? (match[1] ?? match[2]) : null;
}

/** A command line for display, quoting words that need it. */
export function formatCmd(cmd: string[]): string {
  return cmd
    .map(word => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** One line saying how an exec ended (or that it runs). */
export function execSummary(ex: IExec, now: number = Date.now()): string {
  const duration = formatDuration(elapsed(ex.created_at, ex.finished_at, now));
  if (ex.status === 'running') {
    return `running for ${duration}`;
  }
  const code = ex.exit_code === null || ex.exit_code === undefined ? '' : `, exit ${ex.exit_code}`;
  return `${ex.status}${code} after ${duration}`;
}

/** One line saying a session's state and age. */
export function sessionSummary(s: ISession, now: number = Date.now()): string {
  const duration = formatDuration(elapsed(s.created_at, s.ended_at, now));
  return s.status === 'dead'
    ? `dead after ${duration}${s.error_message ? `: ${s.error_message}` : ''}`
    : `${s.status} for ${duration}`;
}

/** The text of an exec `exit` event's data (a JSON string with `exit_code`, `error`). */
export function exitText(data: string): string {
  try {
    const parsed = JSON.parse(data);
    const code = parsed?.exit_code;
    const error = parsed?.error;
    return `[exit ${code ?? '?'}${error ? `: ${error}` : ''}]`;
  } catch {
    return `[exit: ${data}]`;
  }
}

/** Validates the create form's name: empty, or 1–63 letters, digits, `.`, `_`, `-`. */
export function nameProblem(name: string): string | null {
  if (name === '') {
    return null;
  }
  return /^[A-Za-z0-9._-]{1,63}$/.test(name)
    ? null
    : 'A name is 1–63 letters, digits, ".", "_" or "-".';
}

/** Parses the create form's volumes, one `host:guest[:ro]` per line. */
export function parseVolumes(
  text: string
): { host_path: string; guest_path: string; readonly: boolean }[] {
  const volumes = [];
  for (const raw of text.split(/\n|,/)) {
    const line = raw.trim();
    if (!line) {
      continue;
    }
    const parts = line.split(':');
    let readonly = false;
    if (parts.length === 3 && (parts[2] === 'ro' || parts[2] === 'rw')) {
      readonly = parts.pop() === 'ro';
    }
    if (parts.length !== 2 || !parts[0].startsWith('/') || !parts[1].startsWith('/')) {
      throw new Error(`"${line}" is not host_path:guest_path[:ro] with absolute paths`);
    }
    volumes.push({ host_path: parts[0], guest_path: parts[1], readonly });
  }
  return volumes;
}

/** What the status bar says of a kernel's box: its state, and why in the title. */
export interface IBoxState {
  state: string;
  title: string;
}

/**
 * The state of a kernel's box from what is known: the box as the server lists it, the
 * server's word on a failed create or start, the kernel's own `BoxUnavailable` error,
 * and whether the box was seen before (a box that was there and is not is `removed`).
 */
export function boxState(
  box: IBox | undefined,
  failure: string | undefined,
  kernelError: string | undefined,
  seen: boolean
): IBoxState {
  if (box) {
    const why = box.status === 'running' ? '' : box.error_message || kernelError || '';
    return { state: box.status, title: why };
  }
  if (failure || kernelError) {
    return { state: 'failed', title: (failure || kernelError)! };
  }
  return seen
    ? { state: 'removed', title: 'The box is no longer on the server' }
    : { state: 'starting', title: 'The kernel is opening its box' };
}
