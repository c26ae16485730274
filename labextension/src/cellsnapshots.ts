/**
 * The cell commands of a BoxRun notebook: "Snapshot after this cell", "Restore to this
 * snapshot" and "Branch notebook here", in the cell's context menu and the palette. They
 * run `%boxrun` lines through the notebook's kernel (silently), so that the kernel does
 * what its magics do, and say what the kernel printed in a notification.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';

import { BoxRunClient, errorText } from './api';
import {
  IMagicOutput,
  SNAPSHOT_CLASS,
  boxrunLine,
  branchBox,
  branchBoxName,
  branchNotebook,
  branchPath,
  branchSession,
  cellSnapshot,
  collectOutput,
  forkedBox,
  forkedSession,
  setCellSnapshot,
  snapshotMemory,
  snapshotName,
  succeeded
} from './snapshots';
import { isBoxRunKernel } from './statusbar';

type Cell = NonNullable<NotebookPanel['content']['activeCell']>;

export namespace CellCommandIDs {
  export const snapshot = 'boxrun:snapshot-cell';
  export const restore = 'boxrun:restore-cell';
  export const branch = 'boxrun:branch-notebook';
}

/** Run a `%boxrun` line in `kernel`, silently; what it printed. */
export async function runMagic(kernel: Kernel.IKernelConnection, line: string): Promise<IMagicOutput> {
  const out: IMagicOutput = { stdout: '', stderr: '', error: null };
  const future = kernel.requestExecute(
    { code: line, silent: true, store_history: false, stop_on_error: false },
    true
  );
  future.onIOPub = msg => collectOutput(msg, out);
  const reply = await future.done;
  if (reply.content.status === 'error' && out.error === null) {
    out.error = `${reply.content.ename}: ${reply.content.evalue}`;
  }
  return out;
}

/** What a `%boxrun` line printed, as one message. */
function said(out: IMagicOutput): string {
  return [out.stdout, out.stderr, out.error ?? ''].map(s => s.trim()).filter(Boolean).join('\n');
}

/** Mark the notebook's cells that have a snapshot. */
function markCells(panel: NotebookPanel): void {
  for (const cell of panel.content.widgets) {
    cell.toggleClass(SNAPSHOT_CLASS, cellSnapshot(cell.model) !== null);
  }
}

/** Keep the snapshot marks of a notebook up to date. */
function trackMarks(panel: NotebookPanel): void {
  const update = () => markCells(panel);
  void panel.context.ready.then(update);
  panel.content.model?.cells.changed.connect(update);
  panel.content.model?.contentChanged.connect(update);
}

/** What the kernel says when `%boxrun use` names the box it runs in already. */
const ALREADY = 'is the current box already';

/**
 * A branch notebook (`boxrun.branch_of` in its metadata) runs its cells in its fork: once
 * its BoxRun kernel is ready, `%boxrun use FORK --attach SID` goes on with the interpreter
 * the fork carries (`boxrun.branch_session`: a memory snapshot); without one, and after a
 * new or restarted kernel, `%boxrun use FORK` opens a new interpreter there, and says so.
 */
function followBranch(panel: NotebookPanel): void {
  let first = true;
  const attach = async () => {
    await panel.context.ready;
    await panel.sessionContext.ready;
    const meta = panel.content.model?.metadata;
    const fork = branchBox(meta);
    const kernel = panel.sessionContext.session?.kernel;
    if (!fork || !kernel || !isBoxRunKernel(kernel.name)) {
      return;
    }
    const carried = first ? branchSession(meta) : null;
    let why = first
      ? 'the fork carries no interpreter of this notebook: its snapshot holds the disk only'
      : 'the kernel is a new one';
    first = false;
    if (carried) {
      const out = await runMagic(kernel, boxrunLine('use', fork, '--attach', carried));
      if (succeeded(out)) {
        if (!out.stdout.includes(ALREADY)) {
          Notification.info(
            `This branch runs in box ${fork}, variables and all: on its interpreter as it ` +
              "was at the branch point, in a fork of its notebook's box.",
            { autoClose: 15000 }
          );
        }
        return;
      }
      why = `its interpreter could not be attached: ${said(out)}`;
    }
    const out = await runMagic(kernel, boxrunLine('use', fork));
    if (!succeeded(out)) {
      Notification.error(`This branch could not run in box ${fork}: ${said(out)}`);
      return;
    }
    if (!out.stdout.includes(ALREADY)) {
      Notification.info(
        `This branch runs in box ${fork} in a new interpreter (${why}): its files are as ` +
          'they were at the branch point, but the variables of the cells above must be made again.',
        { autoClose: 15000 }
      );
    }
  };
  const run = () => void attach().catch(err => Notification.error(errorText(err)));
  run();
  panel.sessionContext.kernelChanged.connect((_, change) => {
    if (change.oldValue && change.newValue) {
      run();
    }
  });
  // A restarted kernel opens its own box again: once it is idle, move it to the fork.
  let restarted = false;
  panel.sessionContext.statusChanged.connect((_, status) => {
    if (status === 'restarting' || status === 'autorestarting') {
      restarted = true;
    } else if (status === 'idle' && restarted) {
      restarted = false;
      run();
    }
  });
}

/** Add the cell commands, their context-menu items and palette entries. */
export function addCellCommands(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  client: BoxRunClient,
  palette: ICommandPalette | null
): void {
  const { commands, serviceManager } = app;

  /** The current BoxRun notebook, its active cell and kernel, or null. */
  const target = (): { panel: NotebookPanel; cell: Cell; kernel: Kernel.IKernelConnection } | null => {
    const panel = notebooks.currentWidget;
    const cell = panel?.content.activeCell;
    const kernel = panel?.sessionContext.session?.kernel;
    if (!panel || !cell || !kernel || !isBoxRunKernel(kernel.name) || cell.model.type !== 'code') {
      return null;
    }
    return { panel, cell, kernel };
  };

  /** Run `line` in the target's kernel; its message if it worked, else shown as an error. */
  const magic = async (kernel: Kernel.IKernelConnection, line: string): Promise<IMagicOutput | null> => {
    const out = await runMagic(kernel, line);
    if (!succeeded(out)) {
      Notification.error(said(out) || `${line} failed`, { autoClose: 10000 });
      return null;
    }
    return out;
  };

  /** Snapshot the kernel's box after the cell; the snapshot, recorded in the cell. */
  const snapshot = async (panel: NotebookPanel, cell: Cell, kernel: Kernel.IKernelConnection) => {
    const name = snapshotName(cell.model.id);
    const old = cellSnapshot(cell.model);
    if (old) {
      // Names are unique per box: the cell's new snapshot replaces its old one.
      await client
        .deleteSnapshot(old.box, old.name)
        .catch(err => (err?.status === 404 ? undefined : Promise.reject(err)));
      setCellSnapshot(cell.model, null);
    }
    const out = await magic(kernel, boxrunLine('snapshot', name));
    const box = out && /^snapshot \S+ of box (\S+):/m.exec(out.stdout)?.[1];
    if (!out || !box) {
      markCells(panel);
      return null;
    }
    const snap = {
      name,
      box,
      memory: snapshotMemory(out.stdout) === true,
      created_at: new Date().toISOString()
    };
    setCellSnapshot(cell.model, snap);
    markCells(panel);
    Notification.success(said(out), { autoClose: 6000 });
    return snap;
  };

  const isBoxRunCell = () => target() !== null;
  const hasSnapshot = () => {
    const t = target();
    return !!t && cellSnapshot(t.cell.model) !== null;
  };
  const report = (err: unknown): void => {
    Notification.error(errorText(err), { autoClose: 10000 });
  };

  commands.addCommand(CellCommandIDs.snapshot, {
    label: 'Snapshot after this cell',
    caption: 'Snapshot the box of this BoxRun notebook (after the cells sent so far ran)',
    isEnabled: isBoxRunCell,
    isVisible: isBoxRunCell,
    execute: async () => {
      const t = target();
      if (t) {
        await snapshot(t.panel, t.cell, t.kernel).catch(report);
      }
    }
  });

  commands.addCommand(CellCommandIDs.restore, {
    label: 'Restore to this snapshot',
    caption: 'Put the box back in the state of this cell’s snapshot',
    isEnabled: hasSnapshot,
    isVisible: hasSnapshot,
    execute: async () => {
      const t = target();
      const snap = t && cellSnapshot(t.cell.model);
      if (!t || !snap) {
        return;
      }
      const out = await runMagic(t.kernel, boxrunLine('restore', snap.name, '-b', snap.box)).catch(
        report
      );
      if (!out) {
        return;
      }
      // A disk-only restore says on stderr that the interpreter restarted: a warning.
      if (out.error === null && out.stdout.includes('is back at snapshot')) {
        Notification.success(said(out), { autoClose: 8000 });
      } else if (out.error === null && out.stderr.includes('is back at snapshot')) {
        Notification.warning(said(out), { autoClose: 12000 });
      } else {
        Notification.error(said(out), { autoClose: 10000 });
      }
    }
  });

  commands.addCommand(CellCommandIDs.branch, {
    label: 'Branch notebook here',
    caption: 'A copy of this notebook up to this cell, on a fork of its box',
    isEnabled: isBoxRunCell,
    isVisible: isBoxRunCell,
    execute: async () => {
      const t = target();
      if (!t) {
        return;
      }
      try {
        const snap = cellSnapshot(t.cell.model) ?? (await snapshot(t.panel, t.cell, t.kernel));
        if (!snap) {
          return;
        }
        const path = t.panel.context.path;
        const slash = path.lastIndexOf('/');
        const listing = await serviceManager.contents.get(slash >= 0 ? path.slice(0, slash) : '', {
          content: true
        });
        const taken = (listing.content as { path: string }[]).map(item => item.path);
        const newPath = branchPath(path, taken);
        const n = Number(/-branch-(\d+)\.ipynb$/.exec(newPath)?.[1] ?? 1);
        const out = await magic(
          t.kernel,
          boxrunLine('fork', snap.name, '-b', snap.box, '--name', branchBoxName(snap.box, n))
        );
        const fork = out && forkedBox(out.stdout);
        if (!fork) {
          return;
        }
        const index = t.panel.content.widgets.indexOf(t.cell);
        const nb = branchNotebook(t.panel.context.model.toJSON(), index, fork, forkedSession(out.stdout));
        await serviceManager.contents.save(newPath, { type: 'notebook', format: 'json', content: nb });
        await commands.execute('docmanager:open', {
          path: newPath,
          kernel: { name: t.kernel.name }
        });
      } catch (err) {
        report(err);
      }
    }
  });

  const ids = [CellCommandIDs.snapshot, CellCommandIDs.restore, CellCommandIDs.branch];
  ids.forEach((command, i) =>
    app.contextMenu.addItem({ command, selector: '.jp-Notebook .jp-Cell', rank: 20 + i })
  );
  for (const command of ids) {
    palette?.addItem({ command, category: 'BoxRun' });
  }

  notebooks.widgetAdded.connect((_, panel) => {
    trackMarks(panel);
    followBranch(panel);
  });
}
