/**
 * The BoxRun JupyterLab extension: sidebar panel, terminals, status item, commands, and
 * per-cell usage kept in notebooks.
 */

import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  IThemeManager,
  InputDialog,
  MainAreaWidget,
  WidgetTracker,
  showDialog
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';

import { BoxRunClient, errorText } from './api';
import { addCellCommands } from './cellsnapshots';
import { boxLabel } from './format';
import { boxrunIcon } from './icons';
import { BoxRunModel } from './model';
import { BoxRunPanel } from './panel';
import { BoxStatusItem } from './statusbar';
import { BoxTerminal } from './terminal';
import { IBox } from './types';
import { recordCellUsage } from './usage';

export namespace CommandIDs {
  export const openPanel = 'boxrun:open-panel';
  export const refresh = 'boxrun:refresh';
  export const createBox = 'boxrun:create-box';
  export const startBox = 'boxrun:start-box';
  export const stopBox = 'boxrun:stop-box';
  export const removeBox = 'boxrun:remove-box';
  export const openTerminal = 'boxrun:open-terminal';
  export const revealBox = 'boxrun:reveal-box';
}

const CATEGORY = 'BoxRun';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'boxrun-jupyter:plugin',
  description: 'A BoxRun panel listing sandboxed boxes, with terminals into them.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer, IStatusBar, INotebookTracker, IThemeManager, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null,
    notebooks: INotebookTracker | null,
    themes: IThemeManager | null
  ) => {
    const client = new BoxRunClient(app.serviceManager.serverSettings);
    const model = new BoxRunModel(client, app.serviceManager.sessions);
    const { commands, shell } = app;

    const terminals = new WidgetTracker<MainAreaWidget<BoxTerminal>>({
      namespace: 'boxrun-terminal'
    });
    themes?.themeChanged.connect(() => {
      // Let the new theme's CSS apply before reading its variables.
      requestAnimationFrame(() => terminals.forEach(w => w.content.updateTheme()));
    });

    /** The box named by a command's `id` argument, or one the user picks from `eligible`. */
    const pickBox = async (
      args: any,
      title: string,
      eligible: (box: IBox) => boolean
    ): Promise<IBox | null> => {
      const id = typeof args?.id === 'string' ? args.id : null;
      if (id) {
        const box = model.find(id) ?? (await client.box(id).catch(() => undefined));
        if (!box) {
          model.setError(`There is no box ${id}.`);
        }
        return box ?? null;
      }
      const candidates = model.list.filter(eligible);
      if (candidates.length === 0) {
        await showDialog({
          title,
          body: 'No box fits this action.',
          buttons: [Dialog.okButton()]
        });
        return null;
      }
      const labels = candidates.map(b => `${boxLabel(b)} (${b.status}, ${b.image})`);
      const result = await InputDialog.getItem({ title, items: labels });
      if (!result.button.accept || result.value === null) {
        return null;
      }
      return candidates[labels.indexOf(result.value)] ?? null;
    };

    const openTerminal = (box: IBox) => {
      const content = new BoxTerminal(client, box.id, boxLabel(box));
      const widget = new MainAreaWidget({ content });
      widget.id = `boxrun-terminal-${box.id}-${Date.now()}`;
      widget.title.icon = boxrunIcon;
      widget.addClass('jp-BoxRun-terminalPanel');
      void terminals.add(widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
    };

    const confirmRemove = async (box: IBox): Promise<void> => {
      const running = box.status === 'running';
      const result = await showDialog({
        title: `Remove the box ${boxLabel(box)}?`,
        body: running
          ? 'The box is running: it will be stopped, and its disk and exec history deleted.'
          : 'Its disk and exec history will be deleted.',
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })]
      });
      if (result.button.accept) {
        await model.removeBox(box.id, running).catch(() => undefined); // the banner says why
      }
    };

    const panel = new BoxRunPanel(model, {
      openTerminal: id => {
        const box = model.find(id);
        if (box) {
          openTerminal(box);
        }
      },
      remove: async id => {
        const box = model.find(id);
        if (box) {
          await confirmRemove(box);
        }
      },
      openPath: path => void commands.execute('docmanager:open', { path })
    });
    panel.title.caption = 'BoxRun: sandboxed boxes';
    shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, 'boxrun-panel');
    model.connect();

    commands.addCommand(CommandIDs.openPanel, {
      label: 'Show the BoxRun Panel',
      caption: 'Show the list of BoxRun boxes',
      icon: boxrunIcon,
      execute: () => shell.activateById(panel.id)
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh the BoxRun Boxes',
      execute: () => model.refresh()
    });
    commands.addCommand(CommandIDs.createBox, {
      label: 'Create a BoxRun Box…',
      execute: () => {
        shell.activateById(panel.id);
        panel.openCreateForm();
      }
    });
    commands.addCommand(CommandIDs.startBox, {
      label: 'Start a BoxRun Box…',
      execute: async args => {
        const box = await pickBox(args, 'Start a box', b => b.status === 'stopped');
        if (box) {
          await model.startBox(box.id).catch(err => model.setError(errorText(err)));
        }
      }
    });
    commands.addCommand(CommandIDs.stopBox, {
      label: 'Stop a BoxRun Box…',
      execute: async args => {
        const box = await pickBox(args, 'Stop a box', b => b.status === 'running');
        if (box) {
          await model.stopBox(box.id).catch(err => model.setError(errorText(err)));
        }
      }
    });
    commands.addCommand(CommandIDs.removeBox, {
      label: 'Remove a BoxRun Box…',
      execute: async args => {
        const box = await pickBox(args, 'Remove a box', b => b.status !== 'creating');
        if (box) {
          await confirmRemove(box);
        }
      }
    });
    commands.addCommand(CommandIDs.openTerminal, {
      label: 'Open a Terminal in a BoxRun Box…',
      execute: async args => {
        const box = await pickBox(args, 'Open a terminal in a box', b => b.status === 'running');
        if (box) {
          openTerminal(box);
        }
      }
    });
    commands.addCommand(CommandIDs.revealBox, {
      label: 'Show a Box in the BoxRun Panel',
      execute: async args => {
        const box = await pickBox(args, 'Show a box', () => true);
        if (box) {
          shell.activateById(panel.id);
          model.reveal(box.id);
        }
      }
    });
    if (palette) {
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category: CATEGORY });
      }
    }

    if (statusBar && notebooks) {
      const item = new BoxStatusItem(model, notebooks);
      statusBar.registerStatusItem('boxrun-jupyter:box-status', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => item.isRelevant,
        activeStateChanged: item.activeChanged
      });
    }
    if (notebooks) {
      // The BoxRun kernel's per-cell usage, kept in the notebook.
      recordCellUsage(NotebookActions.executed);
      // Snapshots per cell, restores and branches of BoxRun notebooks.
      addCellCommands(app, notebooks, client, palette);
    }
    model.revealRequested.connect(() => shell.activateById(panel.id));
  }
};

export default plugin;
