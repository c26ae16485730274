/**
 * Snapshots of a BoxRun notebook's box per cell: what the cell commands record in a cell's
 * metadata, the `%boxrun` lines they send the kernel, and the branch notebook they write.
 */

import type { KernelMessage } from '@jupyterlab/services';

import { USAGE_KEY } from './usage';

/** What a cell's `boxrun.snapshot` metadata holds: the snapshot taken after the cell ran. */
export interface ICellSnapshot {
  /** The snapshot's name in its box. */
  name: string;
  /** The box it is a snapshot of (the kernel's current box when it was taken). */
  box: string;
  /** Whether processes and memory are in it, not only the disk. */
  memory: boolean;
  created_at: string;
}

/** A cell model's metadata access, as `ICellModel` has it. */
export interface IMetadataModel {
  getMetadata(key: string): unknown;
  setMetadata(key: string, value: unknown): void;
}

/** The class of a cell that has a snapshot. */
export const SNAPSHOT_CLASS = 'jp-BoxRun-hasSnapshot';

const NAME_CHARS = /[^A-Za-z0-9_.-]/g;

/** The snapshot name of a cell (`cell-<first 8 characters of its id>`), a valid API name. */
export function snapshotName(cellId: string): string {
  const short = cellId.replace(NAME_CHARS, '').slice(0, 8);
  return `cell-${short || 'x'}`;
}

/** The cell's snapshot, if its metadata records a well-formed one. */
export function cellSnapshot(model: IMetadataModel): ICellSnapshot | null {
  const meta = model.getMetadata(USAGE_KEY);
  const snap = (meta as Record<string, unknown> | undefined)?.snapshot as
    | Record<string, unknown>
    | undefined;
  if (
    typeof snap !== 'object' ||
    snap === null ||
    typeof snap.name !== 'string' ||
    typeof snap.box !== 'string'
  ) {
    return null;
  }
  return {
    name: snap.name,
    box: snap.box,
    memory: snap.memory === true,
    created_at: typeof snap.created_at === 'string' ? snap.created_at : ''
  };
}

/** Record `snap` as the cell's snapshot (beside its usage in `boxrun`), or drop it (null). */
export function setCellSnapshot(model: IMetadataModel, snap: ICellSnapshot | null): void {
  const meta = model.getMetadata(USAGE_KEY);
  const rest =
    typeof meta === 'object' && meta !== null && !Array.isArray(meta)
      ? { ...(meta as Record<string, unknown>) }
      : {};
  delete rest.snapshot;
  model.setMetadata(USAGE_KEY, snap ? { ...rest, snapshot: { ...snap } } : rest);
}

/** A `%boxrun` line with its arguments quoted for the kernel's shell-like parser. */
export function boxrunLine(...args: string[]): string {
  const quote = (a: string) => (/^[A-Za-z0-9_.:\/-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return `%boxrun ${args.map(quote).join(' ')}`;
}

/** What the kernel printed for a `%boxrun` line. */
export interface IMagicOutput {
  stdout: string;
  stderr: string;
  /** The error the kernel replied with, if any. */
  error: string | null;
}

/** Collect the text of an iopub message of a silent execute into `out`. */
export function collectOutput(msg: KernelMessage.IIOPubMessage, out: IMagicOutput): void {
  const content = msg.content as Record<string, any>;
  if (msg.header.msg_type === 'stream') {
    if (content.name === 'stderr') {
      out.stderr += String(content.text ?? '');
    } else {
      out.stdout += String(content.text ?? '');
    }
  } else if (msg.header.msg_type === 'error') {
    out.error = `${content.ename}: ${content.evalue}`;
  }
}

/** Whether a `%boxrun` line did what it was asked: no error, nothing on stderr. */
export function succeeded(out: IMagicOutput): boolean {
  return out.error === null && !out.stderr.trim();
}

/** What `%boxrun snapshot NAME` says of the snapshot: whether memory is in it, or null. */
export function snapshotMemory(stdout: string): boolean | null {
  if (/processes and memory included/.test(stdout)) {
    return true;
  }
  return /its disk only/.test(stdout) ? false : null;
}

/** The name `%boxrun fork` gave the new box (`box NAME (ID) is a fork …`), or null. */
export function forkedBox(stdout: string): string | null {
  return /^box (\S+) \(\S+\) is a fork/m.exec(stdout)?.[1] ?? null;
}

/**
 * The session whose interpreter the fork carries, as `%boxrun fork` names it (`%boxrun use
 * NAME --attach SID`: a memory snapshot of the kernel's live interpreter), or null.
 */
export function forkedSession(stdout: string): string | null {
  return /--attach (\S+)/.exec(stdout)?.[1] ?? null;
}

/**
 * The path of a branch of notebook `path` not in `taken`: `dir/name-branch-N.ipynb`, with
 * the smallest N from 1.
 */
export function branchPath(path: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  const slash = path.lastIndexOf('/');
  const dir = slash >= 0 ? path.slice(0, slash + 1) : '';
  const stem = path.slice(slash + 1).replace(/\.ipynb$/i, '');
  for (let n = 1; ; n++) {
    const candidate = `${dir}${stem}-branch-${n}.ipynb`;
    if (!used.has(candidate)) {
      return candidate;
    }
  }
}

/** A box name for a branch's fork: `<source box>-b<N>`, cut to the API's 63 characters. */
export function branchBoxName(source: string, n: number): string {
  const tail = `-b${n}`;
  return `${source.slice(0, 63 - tail.length)}${tail}`;
}

/** A copied cell's JSON without its snapshot (the source box's, not the fork's). */
function withoutSnapshot(cell: any): any {
  const meta = cell.metadata?.[USAGE_KEY];
  if (typeof meta !== 'object' || meta === null || !('snapshot' in meta)) {
    return cell;
  }
  const { snapshot: _, ...rest } = meta;
  return { ...cell, metadata: { ...cell.metadata, [USAGE_KEY]: rest } };
}

/**
 * The notebook JSON `nb` with the cells up to and including `index` (their snapshots,
 * of the source's box, left out) and a new empty cell; its kernel is to use box `fork`,
 * attached to the interpreter of `session` there if the fork carries one.
 */
export function branchNotebook(nb: any, index: number, fork: string, session: string | null = null): any {
  const cells = (nb.cells ?? []).slice(0, index + 1).map(withoutSnapshot);
  const branch = session ? { branch_of: fork, branch_session: session } : { branch_of: fork };
  return {
    ...nb,
    cells: [...cells, { cell_type: 'code', source: '', metadata: {}, outputs: [], execution_count: null }],
    metadata: { ...(nb.metadata ?? {}), [USAGE_KEY]: branch }
  };
}

/** The box a branch notebook's kernel is to use, from its metadata, or null. */
export function branchBox(metadata: unknown): string | null {
  const meta = (metadata as Record<string, any> | undefined)?.[USAGE_KEY];
  return typeof meta?.branch_of === 'string' ? meta.branch_of : null;
}

/** The session whose interpreter a branch notebook's fork carries, from its metadata. */
export function branchSession(metadata: unknown): string | null {
  const meta = (metadata as Record<string, any> | undefined)?.[USAGE_KEY];
  return typeof meta?.branch_session === 'string' ? meta.branch_session : null;
}
