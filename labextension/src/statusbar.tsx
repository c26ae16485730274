/** The status-bar item: the box the active notebook's BoxRun kernel runs in, and its state. */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import React from 'react';

import { boxState, kernelBoxNames } from './format';
import { boxrunIcon } from './icons';
import { BoxRunModel } from './model';
import { IBox } from './types';

/** Whether a kernel (by its kernelspec name) is the BoxRun kernel. */
export function isBoxRunKernel(name: string | undefined | null): boolean {
  return !!name && name.toLowerCase().startsWith('boxrun');
}

export class BoxStatusItem extends ReactWidget {
  constructor(
    private _model: BoxRunModel,
    private _tracker: INotebookTracker
  ) {
    super();
    this.addClass('jp-BoxRun-statusItem');
    this.node.title = 'The box this notebook’s BoxRun kernel runs in: click to show it';
    this.node.addEventListener('click', () => {
      const box = this.box;
      if (box) {
        this._model.reveal(box.id);
      } else if (this.boxName) {
        this._model.setError(`The box ${this.boxName} is not on the server (yet).`);
      }
    });
    _tracker.currentChanged.connect(this._onCurrent, this);
    _model.changed.connect(this._refresh, this);
    this._onCurrent();
  }

  /** Emitted when whether the item should show changes. */
  get activeChanged(): ISignal<this, void> {
    return this._activeChanged;
  }

  /** Shown only for a notebook running the BoxRun kernel. */
  get isRelevant(): boolean {
    return this.boxName !== null;
  }

  /** The name of the active notebook kernel's box, or null. */
  get boxName(): string | null {
    const kernel = this._panel?.sessionContext.session?.kernel;
    if (!kernel || !isBoxRunKernel(kernel.name)) {
      return null;
    }
    const names = kernelBoxNames(kernel.id);
    return names.find(name => this._model.find(name)) ?? names[0];
  }

  /** The active notebook kernel's box, if the server has it. */
  get box(): IBox | undefined {
    const name = this.boxName;
    return name ? this._model.find(name) : undefined;
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this._model.changed}>
        {() => {
          const name = this.boxName;
          const box = this.box;
          if (box && box.status === 'running') {
            this._kernelError = undefined;
          }
          if (box) {
            this._seen = name;
          }
          const { state, title } = boxState(
            box,
            name ? this._model.failures.get(name) : undefined,
            this._kernelError,
            !!name && this._seen === name
          );
          return (
            <span className="jp-BoxRun-statusText" data-box-name={name ?? ''} title={title}>
              <boxrunIcon.react tag="span" className="jp-BoxRun-statusIcon" />
              <span>{name ?? ''}</span>
              <span className={`jp-BoxRun-status-${state}`} data-state={state}>
                {' · '}
                {state}
              </span>
            </span>
          );
        }}
      </UseSignal>
    );
  }

  dispose(): void {
    this._tracker.currentChanged.disconnect(this._onCurrent, this);
    this._model.changed.disconnect(this._refresh, this);
    super.dispose();
  }

  private _onCurrent(): void {
    const context = this._panel?.sessionContext;
    context?.kernelChanged.disconnect(this._refresh, this);
    context?.sessionChanged.disconnect(this._refresh, this);
    context?.iopubMessage.disconnect(this._onIOPub, this);
    context?.statusChanged.disconnect(this._onStatus, this);
    this._panel = this._tracker.currentWidget;
    const next = this._panel?.sessionContext;
    next?.kernelChanged.connect(this._refresh, this);
    next?.sessionChanged.connect(this._refresh, this);
    next?.iopubMessage.connect(this._onIOPub, this);
    next?.statusChanged.connect(this._onStatus, this);
    this._kernelError = undefined;
    this._refresh();
  }

  /** The kernel saying its box is unavailable (it could not open it, or it died). */
  private _onIOPub(_: unknown, msg: KernelMessage.IMessage): void {
    if (
      KernelMessage.isErrorMsg(msg as KernelMessage.IIOPubMessage) &&
      (msg as KernelMessage.IErrorMsg).content.ename === 'BoxUnavailable'
    ) {
      this._kernelError = (msg as KernelMessage.IErrorMsg).content.evalue;
      this._refresh();
    }
  }

  /** A restarting kernel opens its box again: forget its last error and box. */
  private _onStatus(_: unknown, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'starting') {
      this._kernelError = undefined;
      this._seen = null;
      this._refresh();
    }
  }

  private _refresh(): void {
    const relevant = this.isRelevant;
    if (relevant !== this._wasRelevant) {
      this._wasRelevant = relevant;
      this._activeChanged.emit();
    }
    this.update();
  }

  private _panel: NotebookPanel | null = null;
  private _kernelError: string | undefined = undefined;
  private _seen: string | null = null;
  private _wasRelevant = false;
  private _activeChanged = new Signal<this, void>(this);
}
