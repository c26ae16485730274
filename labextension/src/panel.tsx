/** The BoxRun sidebar panel: every box, live, with its actions and details. */

import {
  ReactWidget,
  ToolbarButtonComponent,
  UseSignal,
  addIcon,
  caretDownIcon,
  caretRightIcon,
  deleteIcon,
  refreshIcon,
  runIcon,
  stopIcon,
  terminalIcon
} from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { CreateForm } from './createform';
import { BoxDetails, IOutputTarget, OutputView } from './details';
import {
  baseName,
  boxLabel,
  formatBytes,
  formatCpu,
  formatIsolation,
  formatMemoryMb,
  notebookLabel,
  splitName
} from './format';
import { useNow } from './hooks';
import { boxrunIcon } from './icons';
import { BoxRunModel, IKernelUse } from './model';
import { IBox } from './types';

/** What the panel asks the application to do. */
export interface IPanelActions {
  openTerminal(boxId: string): void;
  /** Ask for confirmation, then remove. */
  remove(boxId: string): Promise<void>;
  openPath(path: string): void;
}

export class BoxRunPanel extends ReactWidget {
  constructor(
    readonly model: BoxRunModel,
    private _actions: IPanelActions
  ) {
    super();
    this.id = 'boxrun-panel';
    this.addClass('jp-BoxRun-panel');
    this.title.icon = boxrunIcon;
    this.title.caption = 'BoxRun: sandboxed boxes';
    model.revealRequested.connect(this._onReveal, this);
  }

  /** Open the create form (the `boxrun:create-box` command). */
  openCreateForm(): void {
    this._createOpen = true;
    this.update();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => (
          <PanelView
            model={this.model}
            actions={this._actions}
            createOpen={this._createOpen}
            setCreateOpen={open => {
              this._createOpen = open;
              this.update();
            }}
          />
        )}
      </UseSignal>
    );
  }

  dispose(): void {
    this.model.revealRequested.disconnect(this._onReveal, this);
    super.dispose();
  }

  private _onReveal(_: BoxRunModel, id: string): void {
    requestAnimationFrame(() => {
      const row = this.node.querySelector(`[data-box-id="${CSS.escape(id)}"]`);
      row?.scrollIntoView({ block: 'nearest' });
      (row as HTMLElement | null)?.focus();
    });
  }

  private _createOpen = false;
}

function PanelView(props: {
  model: BoxRunModel;
  actions: IPanelActions;
  createOpen: boolean;
  setCreateOpen: (open: boolean) => void;
}): JSX.Element {
  const { model } = props;
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const [output, setOutput] = useState<IOutputTarget | null>(null);
  const now = useNow(500, model.pending.length > 0);
  const boxes = model.list;
  const info = model.info;

  useEffect(() => {
    // A revealed box opens its details.
    const id = model.highlighted;
    if (id && !expanded.has(id)) {
      setExpanded(new Set(expanded).add(id));
    }
  }, [model.highlighted]);

  const toggle = (id: string) => {
    const next = new Set(expanded);
    if (next.has(id)) {
      next.delete(id);
    } else {
      next.add(id);
    }
    setExpanded(next);
  };

  const limitations = Array.isArray(info?.limitations)
    ? info?.limitations.join('\n')
    : (info?.limitations ?? '');

  return (
    <div className="jp-BoxRun-root">
      <div className="jp-BoxRun-header">
        <h2 className="jp-BoxRun-title">BoxRun</h2>
        <span className={`jp-BoxRun-live jp-BoxRun-live-${model.live}`} title={liveTitle(model)}>
          {model.live === 'stream' ? 'live' : model.live}
        </span>
        <div className="jp-BoxRun-toolbar">
          <ToolbarButtonComponent
            icon={addIcon}
            tooltip="Create a box"
            className="jp-BoxRun-new"
            onClick={() => props.setCreateOpen(!props.createOpen)}
          />
          <ToolbarButtonComponent
            icon={refreshIcon}
            tooltip="Refresh the list"
            onClick={() => void model.refresh()}
          />
        </div>
      </div>
      {info && (
        <div className="jp-BoxRun-info" title={limitations || undefined}>
          <span className="jp-BoxRun-isolation">{formatIsolation(info.isolation)}</span>
          {info.backend && info.backend !== info.isolation && <span> · {info.backend}</span>}
          <span
            title={
              'Memory is reserved; cpu is committed (each box’s cpu is its ceiling and ' +
              `weight), up to ${info.max_committed_cpu ?? info.max_cpu} on ${info.max_cpu} cores`
            }
          >
            {' '}
            · memory {formatMemoryMb(info.reserved_memory_mb ?? info.used_memory_mb)} of{' '}
            {formatMemoryMb(info.max_memory_mb)} · CPU{' '}
            {info.committed_cpu ?? info.used_cpu ?? '?'} of{' '}
            {info.max_committed_cpu ?? info.max_cpu}
          </span>
          {info.backend_reason && <div className="jp-BoxRun-reason">{info.backend_reason}</div>}
        </div>
      )}
      {model.error && (
        <div className="jp-BoxRun-error jp-BoxRun-banner" role="alert">
          <span>{model.error}</span>
          <button className="jp-BoxRun-dismiss" title="Dismiss" onClick={() => model.clearError()}>
            ✕
          </button>
        </div>
      )}
      {props.createOpen && (
        <CreateForm model={model} onClose={() => props.setCreateOpen(false)} />
      )}
      {model.pending.map((p, i) => (
        <div className="jp-BoxRun-progress jp-BoxRun-pending" key={i} role="status">
          <span className="jp-BoxRun-spinner" />
          Creating {p.request.name ?? 'a box'} from {p.request.image}:{' '}
          {((now - p.startedAt) / 1000).toFixed(1)} s
        </div>
      ))}
      <div className="jp-BoxRun-list" role="list">
        {boxes.length === 0 && (
          <div className="jp-BoxRun-empty">
            No boxes yet. Create one with the + button, or run a notebook with the BoxRun
            kernel.
          </div>
        )}
        {boxes.map(box => (
          <BoxRow
            key={box.id}
            model={model}
            box={box}
            actions={props.actions}
            expanded={expanded.has(box.id)}
            onToggle={() => toggle(box.id)}
            kernels={model.kernelUses(box)}
            output={output}
            setOutput={setOutput}
          />
        ))}
      </div>
      {model.metricsNote && <div className="jp-BoxRun-hint">{model.metricsNote}</div>}
      {output && (
        <OutputView model={model} target={output} onClose={() => setOutput(null)} />
      )}
    </div>
  );
}

function liveTitle(model: BoxRunModel): string {
  switch (model.live) {
    case 'stream':
      return 'Following the server’s lifecycle stream';
    case 'polling':
      return 'This server has no lifecycle stream: polling the list every 2 s';
    default:
      return 'Connecting to the server';
  }
}

function BoxRow(props: {
  model: BoxRunModel;
  box: IBox;
  actions: IPanelActions;
  expanded: boolean;
  onToggle: () => void;
  kernels: IKernelUse[];
  output: IOutputTarget | null;
  setOutput: (target: IOutputTarget) => void;
}): JSX.Element {
  const { model, box, actions } = props;
  const metrics = model.metrics.get(box.id);
  const busy = model.busy.has(box.id);
  const running = box.status === 'running';
  const stopped = box.status === 'stopped';
  const highlighted = model.highlighted === box.id;
  const memoryUsed = metrics ? formatBytes(metrics.memory_bytes) : '–';
  const catchError = (p: Promise<void>) => p.catch(() => undefined); // shown in the banner
  return (
    <div
      className={`jp-BoxRun-box${highlighted ? ' jp-mod-highlighted' : ''}`}
      data-box-id={box.id}
      data-box-name={box.name ?? ''}
      data-status={box.status}
      role="listitem"
      tabIndex={-1}
    >
      <div className="jp-BoxRun-boxHead">
        <ToolbarButtonComponent
          icon={props.expanded ? caretDownIcon : caretRightIcon}
          tooltip={props.expanded ? 'Hide execs and sessions' : 'Show execs and sessions'}
          className="jp-BoxRun-toggle"
          onClick={props.onToggle}
        />
        <div className="jp-BoxRun-name">
          {props.kernels.length > 0 && (
            <span className="jp-BoxRun-kernels">
              {props.kernels.map(k => (
                <a
                  key={k.kernelId + k.path}
                  className="jp-BoxRun-kernel"
                  onClick={() => actions.openPath(k.path)}
                >
                  <MiddleName
                    text={notebookLabel(k.name || baseName(k.path))}
                    title={`Open ${k.path} (kernel ${k.kernelName} ${k.kernelId})`}
                  />
                </a>
              ))}
            </span>
          )}
          <MiddleName
            text={boxLabel(box)}
            className={props.kernels.length > 0 ? 'jp-BoxRun-boxName' : undefined}
          />
        </div>
      </div>
      <div className="jp-BoxRun-meta jp-BoxRun-stateLine">
        <span className={`jp-BoxRun-badge jp-BoxRun-status-${box.status}`}>{box.status}</span>
        <span className="jp-BoxRun-imageName" title={`image ${box.image}`}>
          {box.image}
        </span>
        <div className="jp-BoxRun-actions">
          {stopped && (
            <ToolbarButtonComponent
              icon={runIcon}
              tooltip="Start the box"
              className="jp-BoxRun-start"
              enabled={!busy}
              onClick={() => void catchError(model.startBox(box.id))}
            />
          )}
          {running && (
            <ToolbarButtonComponent
              icon={terminalIcon}
              tooltip="Open a terminal in the box"
              className="jp-BoxRun-terminal"
              enabled={!busy}
              onClick={() => actions.openTerminal(box.id)}
            />
          )}
          {running && (
            <ToolbarButtonComponent
              icon={stopIcon}
              tooltip="Stop the box (its disk is kept)"
              className="jp-BoxRun-stop"
              enabled={!busy}
              onClick={() => void catchError(model.stopBox(box.id))}
            />
          )}
          <ToolbarButtonComponent
            icon={deleteIcon}
            tooltip="Remove the box and its disk"
            className="jp-BoxRun-remove"
            enabled={!busy && box.status !== 'creating'}
            onClick={() => void actions.remove(box.id)}
          />
        </div>
      </div>
      <div className="jp-BoxRun-meta jp-BoxRun-usage">
        <span title="CPU use (100% = one core) of the box's cores">
          CPU {running ? formatCpu(metrics?.cpu_percent) : '–'} of {box.cpu}
        </span>
        <span title="memory in use of the box's limit">
          mem {running ? memoryUsed : '–'} / {formatMemoryMb(box.memory_mb)}
        </span>
        {box.network && <span>network</span>}
        {busy && <span className="jp-BoxRun-spinner" title="working…" />}
      </div>
      {box.error_message && (
        <div className="jp-BoxRun-error">
          {box.error_message} ({box.error_code})
        </div>
      )}
      {props.expanded && (
        <BoxDetails
          model={model}
          box={box}
          selected={props.output?.boxId === box.id ? props.output.id : null}
          onOpen={props.setOutput}
        />
      )}
    </div>
  );
}

/**
 * A name that, when it does not fit, is cut in the middle: its distinguishing end stays
 * (see `splitName`); the whole name is its title unless `title` is given.
 */
export function MiddleName(props: {
  text: string;
  title?: string;
  className?: string;
}): JSX.Element {
  const [head, tail] = splitName(props.text);
  return (
    <span
      className={`jp-BoxRun-middle ${props.className ?? ''}`}
      title={props.title ?? props.text}
    >
      <span className="jp-BoxRun-middleHead">{head}</span>
      {tail && <span className="jp-BoxRun-middleTail">{tail}</span>}
    </span>
  );
}
