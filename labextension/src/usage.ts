/**
 * Per-cell usage in the saved notebook: the BoxRun kernel puts each cell's wall time, peak
 * memory and cpu time in its execute_reply's metadata (`boxrun_usage`), which JupyterLab
 * does not keep; this copies it into the cell's metadata as `boxrun`.
 */

import type { KernelMessage } from '@jupyterlab/services';
import type { ISignal } from '@lumino/signaling';

/** The cell metadata key holding the usage of the cell's last run. */
export const USAGE_KEY = 'boxrun';

/** A cell's usage as the BoxRun server measures it (jupyter_ext/sessions/usage.py). */
export interface ICellUsage {
  wall_time_s: number;
  /** Null where the box's backend does not report memory or cpu time. */
  peak_memory_bytes: number | null;
  cpu_time_s: number | null;
}

/** What of a notebook cell the recorder uses (a `Cell`; a `CodeCell` has `outputArea`). */
export interface IExecutedCell {
  model: {
    type: string;
    sharedModel: { getSource(): string };
    getMetadata(key: string): unknown;
    setMetadata(key: string, value: unknown): void;
    deleteMetadata(key: string): void;
  };
  outputArea?: {
    future?: { done: Promise<KernelMessage.IExecuteReplyMsg | undefined> } | null;
  };
}

function isUsage(value: unknown): value is ICellUsage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return false;
  }
  const usage = value as Record<string, unknown>;
  const numberOrNull = (key: string) =>
    usage[key] === null || typeof usage[key] === 'number';
  return (
    typeof usage.wall_time_s === 'number' &&
    numberOrNull('cpu_time_s') &&
    numberOrNull('peak_memory_bytes')
  );
}

/**
 * The usage a reply reports, or null: none without `boxrun_usage` (other kernels, or the
 * kernel's `cell_usage=False`), nor for an aborted request (its metadata is the last run's).
 */
export function replyUsage(
  reply: KernelMessage.IExecuteReplyMsg | null | undefined
): ICellUsage | null {
  if (!reply || reply.content?.status === 'aborted') {
    return null;
  }
  const usage = (reply.metadata as Record<string, unknown> | undefined)?.boxrun_usage;
  return isUsage(usage) ? { ...usage } : null;
}

/**
 * Store `usage` as the cell's `boxrun` metadata; without usage drop a stale one, if any.
 * The cell's snapshot (`boxrun.snapshot`, see snapshots.ts) stays.
 */
export function applyUsage(model: IExecutedCell['model'], usage: ICellUsage | null): void {
  const meta = model.getMetadata(USAGE_KEY) as Record<string, unknown> | undefined;
  const kept = meta?.snapshot !== undefined ? { snapshot: meta.snapshot } : null;
  if (usage || kept) {
    model.setMetadata(USAGE_KEY, { ...usage, ...kept });
  } else if (meta !== undefined) {
    model.deleteMetadata(USAGE_KEY);
  }
}

/** Record a code cell's usage once its run is done (a slot for `NotebookActions.executed`). */
export async function recordUsage(_: unknown, { cell }: { cell: IExecutedCell }): Promise<void> {
  if (cell.model.type !== 'code') {
    return;
  }
  // A blank cell is not sent to the kernel: its output area still holds the last run's future.
  const future = cell.model.sharedModel.getSource().trim() ? cell.outputArea?.future : null;
  const reply = await future?.done.catch(() => undefined); // no reply: the kernel went away
  applyUsage(cell.model, replyUsage(reply));
}

/** Record every executed code cell's usage in its metadata, from `executed`. */
export function recordCellUsage(executed: ISignal<unknown, { cell: IExecutedCell }>): void {
  executed.connect(recordUsage);
}
