/** The panel's state: boxes, metrics and kernel sessions, kept live from the server's streams. */

import { Session } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { BoxRunClient, BoxRunError, errorText, sleep } from './api';
import { boxLabel, kernelIdPrefixOf } from './format';
import { ISSEEvent } from './sse';
import { IBox, IBoxRequest, IInfo, ILifecycleEvent, IMetrics } from './types';

/** Milliseconds between polls of `/v1/boxes` when the server has no lifecycle stream. */
export const POLL_MS = 2000;
/** Seconds between metrics samples asked of `/v1/metrics/events`. */
export const METRICS_INTERVAL_S = 2;

/** A notebook or console whose kernel runs in a box. */
export interface IKernelUse {
  path: string;
  name: string;
  kernelId: string;
  kernelName: string;
}

/** A create request in flight, shown while the image resolves and the box boots. */
export interface IPendingCreate {
  request: IBoxRequest;
  startedAt: number;
  controller: AbortController;
}

/** How the list is kept up to date. */
export type LiveMode = 'connecting' | 'stream' | 'polling';

/** Apply one lifecycle event to a map of boxes (pure; exported for tests). */
export function applyLifecycle(boxes: Map<string, IBox>, event: ILifecycleEvent): void {
  const box = event.box;
  if (!box || !box.id) {
    return;
  }
  if (event.type === 'removed') {
    boxes.delete(box.id);
  } else if (event.type === 'failed' && box.status === 'creating') {
    boxes.delete(box.id); // a failed create leaves nothing behind on the server
  } else {
    boxes.set(box.id, box);
  }
}

/** What the panel's banner says of a lifecycle event: why a box failed to start or died. */
export function lifecycleProblem(event: ILifecycleEvent): string | null {
  const box = event.box;
  if ((event.type === 'failed' || event.type === 'died') && box?.error_message) {
    return `${box.name ?? box.id}: ${box.error_message}`;
  }
  return null;
}

/** Boxes newest first, as the API lists them. */
export function sortBoxes(boxes: Iterable<IBox>): IBox[] {
  return [...boxes].sort((a, b) => (b.created_at ?? '').localeCompare(a.created_at ?? ''));
}

export class BoxRunModel {
  readonly client: BoxRunClient;
  boxes = new Map<string, IBox>();
  metrics = new Map<string, IMetrics>();
  info: IInfo | null = null;
  /** The last error, in words, for the panel's banner. */
  error: string | null = null;
  /** Why live metrics are not shown, if they are not. */
  metricsNote: string | null = null;
  live: LiveMode = 'connecting';
  pending: IPendingCreate[] = [];
  /** Box ids with an action (start, stop, remove) in flight. */
  busy = new Set<string>();
  /** The box to scroll to and highlight (set by `reveal`). */
  highlighted: string | null = null;
  /** Why creating or starting a box failed, by its name (or id), until it runs. */
  failures = new Map<string, string>();

  constructor(
    client: BoxRunClient,
    private _sessions: Session.IManager | null = null
  ) {
    this.client = client;
    this._sessions?.runningChanged.connect(this._emit, this);
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted with a box id when the panel should reveal it. */
  get revealRequested(): ISignal<this, string> {
    return this._revealRequested;
  }

  /** Boxes newest first. */
  get list(): IBox[] {
    return sortBoxes(this.boxes.values());
  }

  /** A box by id or name. */
  find(idOrName: string): IBox | undefined {
    return (
      this.boxes.get(idOrName) ?? [...this.boxes.values()].find(b => b.name === idOrName)
    );
  }

  /** The notebooks and consoles whose kernel runs in `box`. */
  kernelUses(box: IBox): IKernelUse[] {
    const prefix = kernelIdPrefixOf(box);
    if (!prefix || !this._sessions) {
      return [];
    }
    const uses: IKernelUse[] = [];
    for (const s of this._sessions.running()) {
      if (s.kernel && s.kernel.id.startsWith(prefix)) {
        uses.push({ path: s.path, name: s.name, kernelId: s.kernel.id, kernelName: s.kernel.name });
      }
    }
    return uses;
  }

  /** Start following the server: list, lifecycle stream (or polling), metrics stream. */
  connect(): void {
    if (this._controller) {
      return;
    }
    this._controller = new AbortController();
    const signal = this._controller.signal;
    void this.refresh();
    void this._followLifecycle(signal);
    void this._followMetrics(signal);
  }

  dispose(): void {
    this._controller?.abort();
    this._controller = null;
    for (const p of this.pending) {
      p.controller.abort();
    }
    this._sessions?.runningChanged.disconnect(this._emit, this);
    Signal.clearData(this);
  }

  /** Re-read the info and the whole list. */
  async refresh(): Promise<void> {
    try {
      const [info, boxes] = await Promise.all([this.client.info(), this.client.boxes()]);
      this.info = info;
      this.boxes = new Map(boxes.map(b => [b.id, b]));
      for (const id of this.metrics.keys()) {
        if (this.boxes.get(id)?.status !== 'running') {
          this.metrics.delete(id);
        }
      }
      if (this.error?.startsWith('Cannot list boxes')) {
        this.error = null;
      }
    } catch (err) {
      this.error = `Cannot list boxes: ${errorText(err)}`;
    }
    this._emit();
  }

  /** Create a box; resolves to it, or throws the API's error. */
  async create(request: IBoxRequest): Promise<IBox> {
    const pending: IPendingCreate = {
      request,
      startedAt: Date.now(),
      controller: new AbortController()
    };
    this.pending = [...this.pending, pending];
    this._emit();
    try {
      const box = await this.client.createBox(request, pending.controller.signal);
      this.boxes.set(box.id, box);
      return box;
    } finally {
      this.pending = this.pending.filter(p => p !== pending);
      void this._refreshInfo();
      this._emit();
    }
  }

  startBox(id: string): Promise<void> {
    return this._act(id, () => this.client.startBox(id));
  }

  stopBox(id: string): Promise<void> {
    return this._act(id, () => this.client.stopBox(id));
  }

  removeBox(id: string, force = false): Promise<void> {
    return this._act(id, async () => {
      await this.client.removeBox(id, force);
      this.boxes.delete(id);
      this.metrics.delete(id);
      return null;
    });
  }

  /** Ask the panel to show `id` (scrolls to it and highlights it). */
  reveal(id: string): void {
    this.highlighted = id;
    this._revealRequested.emit(id);
    this._emit();
  }

  clearError(): void {
    this.error = null;
    this._emit();
  }

  setError(message: string | null): void {
    this.error = message;
    this._emit();
  }

  private async _act(id: string, action: () => Promise<IBox | null>): Promise<void> {
    this.busy.add(id);
    this._emit();
    try {
      const box = await action();
      if (box) {
        this.boxes.set(box.id, box);
        if (box.status !== 'running') {
          this.metrics.delete(box.id);
        }
      }
      this.error = null;
    } catch (err) {
      const label = this.boxes.get(id)?.name ?? id;
      this.error = `${label}: ${errorText(err)}`;
      throw err;
    } finally {
      this.busy.delete(id);
      void this._refreshInfo();
      this._emit();
    }
  }

  private async _refreshInfo(): Promise<void> {
    try {
      this.info = await this.client.info();
      this._emit();
    } catch {
      // the list's own errors say enough
    }
  }

  private async _followLifecycle(signal: AbortSignal): Promise<void> {
    try {
      await this.client.stream(
        '/events',
        event => this._onLifecycle(event),
        {
          signal,
          onOpen: () => {
            this.live = 'stream';
            void this.refresh(); // catch up on what happened while disconnected
          }
        }
      );
    } catch (err) {
      if (signal.aborted) {
        return;
      }
      // No lifecycle stream on this server (404) or refused: poll the list instead.
      console.warn(`BoxRun: no lifecycle stream (${errorText(err)}); polling /v1/boxes`);
      this.live = 'polling';
      this._emit();
      while (!signal.aborted) {
        await sleep(POLL_MS, signal);
        if (!signal.aborted) {
          await this.refresh();
        }
      }
    }
  }

  private _onLifecycle(event: ISSEEvent): void {
    let payload: ILifecycleEvent;
    try {
      payload = JSON.parse(event.data);
    } catch {
      return;
    }
    payload.type = payload.type ?? event.event;
    applyLifecycle(this.boxes, payload);
    const key = payload.box ? boxLabel(payload.box) : '';
    const problem = lifecycleProblem(payload);
    if (problem && payload.box?.error_message) {
      this.error = problem;
      this.failures.set(key, payload.box.error_message);
    } else if (payload.type === 'started') {
      this.failures.delete(key);
    }
    if (payload.box && payload.box.status !== 'running') {
      this.metrics.delete(payload.box.id);
    }
    void this._refreshInfo();
    this._emit();
  }

  private async _followMetrics(signal: AbortSignal): Promise<void> {
    try {
      await this.client.stream(
        `/metrics/events?interval=${METRICS_INTERVAL_S}`,
        event => {
          if (event.event !== 'metrics') {
            return;
          }
          try {
            const sample = JSON.parse(event.data) as IMetrics;
            if (this.boxes.get(sample.box_id)?.status === 'running') {
              this.metrics.set(sample.box_id, sample);
              this._emit();
            }
          } catch {
            // ignore a malformed sample
          }
        },
        { signal, onOpen: () => (this.metricsNote = null) }
      );
    } catch (err) {
      if (!signal.aborted) {
        this.metricsNote =
          err instanceof BoxRunError && err.status === 404
            ? 'This server has no metrics stream.'
            : `No live metrics: ${errorText(err)}`;
        this._emit();
      }
    }
  }

  private _emit(): void {
    this._changed.emit();
  }

  private _controller: AbortController | null = null;
  private _changed = new Signal<this, void>(this);
  private _revealRequested = new Signal<this, string>(this);
}
