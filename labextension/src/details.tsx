/** Per box: its execs, sessions and snapshots, and the output of the one clicked. */

import { Button } from '@jupyterlab/ui-components';
import React, { useEffect, useRef, useState } from 'react';

import { BoxRunError, errorText } from './api';
import {
  execSummary,
  exitText,
  formatAge,
  formatBytes,
  formatCmd,
  sessionSummary
} from './format';
import { stripAnsi, useNow } from './hooks';
import { BoxRunModel } from './model';
import { IBox, IExec, ISession, ISnapshot } from './types';

/** Milliseconds between re-reads of an open box's execs, sessions and snapshots. */
const DETAILS_POLL_MS = 3000;

/** What the output view shows. */
export interface IOutputTarget {
  kind: 'exec' | 'session';
  boxId: string;
  id: string;
  title: string;
}

export function BoxDetails(props: {
  model: BoxRunModel;
  box: IBox;
  onOpen: (target: IOutputTarget) => void;
  selected: string | null;
}): JSX.Element {
  const { model, box } = props;
  const [execs, setExecs] = useState<IExec[] | null>(null);
  const [sessions, setSessions] = useState<ISession[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [sessionsNote, setSessionsNote] = useState<string | null>(null);
  const [snapshots, setSnapshots] = useState<ISnapshot[] | null>(null);
  const [snapshotsNote, setSnapshotsNote] = useState<string | null>(null);
  const running =
    box.status === 'running' ||
    (execs ?? []).some(e => e.status === 'running') ||
    (sessions ?? []).some(s => s.status !== 'dead');
  const now = useNow(1000, running);

  useEffect(() => {
    let live = true;
    const load = async () => {
      try {
        const list = await model.client.execs(box.id);
        if (live) {
          setExecs(list);
          setProblem(null);
        }
      } catch (err) {
        if (live) {
          setProblem(`Cannot list execs: ${errorText(err)}`);
        }
      }
      try {
        const list = await model.client.sessions(box.id);
        if (live) {
          setSessions(list);
          setSessionsNote(null);
        }
      } catch (err) {
        if (live) {
          setSessions([]);
          setSessionsNote(
            err instanceof BoxRunError && err.code === 'NOT_FOUND'
              ? 'This server has no sessions yet.'
              : `Cannot list sessions: ${errorText(err)}`
          );
        }
      }
      try {
        const list = await model.client.snapshots(box.id);
        if (live) {
          setSnapshots(list);
          setSnapshotsNote(null);
        }
      } catch (err) {
        if (live) {
          setSnapshots([]);
          setSnapshotsNote(
            err instanceof BoxRunError && err.code === 'NOT_FOUND'
              ? 'This server has no snapshots.'
              : `Cannot list snapshots: ${errorText(err)}`
          );
        }
      }
    };
    void load();
    const timer = setInterval(() => void load(), DETAILS_POLL_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [model, box.id, box.status]);

  return (
    <div className="jp-BoxRun-details">
      {problem && <div className="jp-BoxRun-error">{problem}</div>}
      <div className="jp-BoxRun-sectionTitle">Execs</div>
      {execs === null ? (
        <div className="jp-BoxRun-hint">loading…</div>
      ) : execs.length === 0 ? (
        <div className="jp-BoxRun-hint">none yet</div>
      ) : (
        <ul className="jp-BoxRun-items">
          {execs.slice(0, 20).map(ex => (
            <li
              key={ex.id}
              className={`jp-BoxRun-item${props.selected === ex.id ? ' jp-mod-selected' : ''}`}
              title={`${ex.id}: click to see its output`}
              onClick={() =>
                props.onOpen({ kind: 'exec', boxId: box.id, id: ex.id, title: formatCmd(ex.cmd) })
              }
            >
              <div className="jp-BoxRun-itemHead">
                <span className={`jp-BoxRun-dot jp-BoxRun-status-${ex.status}`} />
                <code className="jp-BoxRun-cmd">{formatCmd(ex.cmd)}</code>
              </div>
              <span className="jp-BoxRun-itemMeta">{execSummary(ex, now)}</span>
            </li>
          ))}
        </ul>
      )}
      <div className="jp-BoxRun-sectionTitle">Sessions</div>
      {sessionsNote ? (
        <div className="jp-BoxRun-hint">{sessionsNote}</div>
      ) : sessions === null ? (
        <div className="jp-BoxRun-hint">loading…</div>
      ) : sessions.length === 0 ? (
        <div className="jp-BoxRun-hint">none</div>
      ) : (
        <ul className="jp-BoxRun-items">
          {sessions.map(s => (
            <li
              key={s.id}
              className={`jp-BoxRun-item${props.selected === s.id ? ' jp-mod-selected' : ''}`}
              title={`${s.id}: click to see its messages`}
              onClick={() =>
                props.onOpen({ kind: 'session', boxId: box.id, id: s.id, title: `${s.kind} session` })
              }
            >
              <div className="jp-BoxRun-itemHead">
                <span className={`jp-BoxRun-dot jp-BoxRun-status-${s.status}`} />
                <code className="jp-BoxRun-cmd">{s.kind} session</code>
              </div>
              <span className="jp-BoxRun-itemMeta">{sessionSummary(s, now)}</span>
            </li>
          ))}
        </ul>
      )}
      <div className="jp-BoxRun-sectionTitle">Snapshots</div>
      {snapshotsNote ? (
        <div className="jp-BoxRun-hint">{snapshotsNote}</div>
      ) : snapshots === null ? (
        <div className="jp-BoxRun-hint">loading…</div>
      ) : snapshots.length === 0 ? (
        <div className="jp-BoxRun-hint">none</div>
      ) : (
        <ul className="jp-BoxRun-items jp-BoxRun-snapshots">
          {snapshots.map(snap => (
            <li key={snap.id} className="jp-BoxRun-item" title={snap.id}>
              <div className="jp-BoxRun-itemHead">
                <code className="jp-BoxRun-cmd">{snap.name}</code>
              </div>
              <span className="jp-BoxRun-itemMeta">{snapshotSummary(snap, now)}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A snapshot's size, age and kind: `12.0 MiB · 5 min ago · memory`. */
export function snapshotSummary(snap: ISnapshot, now: number): string {
  const kind = snap.memory ? 'memory' : 'disk only';
  return `${formatBytes(snap.size_bytes)} · ${formatAge(snap.created_at, now)} ago · ${kind}`;
}

interface IChunk {
  stream: string;
  text: string;
}

/** Text of one session event (a Jupyter message) for the output view, if it has any. */
export function sessionChunk(payload: any): IChunk | null {
  const content = payload?.content ?? {};
  switch (payload?.msg_type) {
    case 'stream':
      return { stream: content.name === 'stderr' ? 'stderr' : 'stdout', text: content.text ?? '' };
    case 'execute_input':
      return { stream: 'meta', text: `In [${content.execution_count ?? ' '}]: ${content.code}\n` };
    case 'execute_result':
    case 'display_data': {
      const text = content.data?.['text/plain'];
      return text ? { stream: 'stdout', text: `${text}\n` } : null;
    }
    case 'error':
      return {
        stream: 'stderr',
        text: `${(content.traceback ?? [`${content.ename}: ${content.evalue}`]).join('\n')}\n`
      };
    case 'ready':
    case 'restarted':
    case 'reattached':
    case 'dead':
      return { stream: 'meta', text: `[session ${payload.msg_type}]\n` };
    default:
      return null;
  }
}

/** The output of an exec (or the messages of a session), replayed then live. */
export function OutputView(props: {
  model: BoxRunModel;
  target: IOutputTarget;
  onClose: () => void;
}): JSX.Element {
  const { model, target } = props;
  const [chunks, setChunks] = useState<IChunk[]>([]);
  const [state, setState] = useState<string>('connecting…');
  const pre = useRef<HTMLPreElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    setChunks([]);
    setState('connecting…');
    const seen = new Set<number>();
    const add = (chunk: IChunk) => setChunks(list => [...list, chunk]);
    const box = encodeURIComponent(target.boxId);
    const id = encodeURIComponent(target.id);
    const path =
      target.kind === 'exec'
        ? `/boxes/${box}/exec/${id}/events`
        : `/boxes/${box}/sessions/${id}/events`;
    let ended = false;
    model.client
      .stream(
        path,
        event => {
          let payload: any;
          try {
            payload = JSON.parse(event.data);
          } catch {
            return;
          }
          if (typeof payload?.seq === 'number') {
            if (seen.has(payload.seq)) {
              return; // a replayed event seen before a reconnect
            }
            seen.add(payload.seq);
          }
          if (target.kind === 'exec') {
            if (event.event === 'exit') {
              ended = true;
              add({ stream: 'meta', text: `${exitText(payload.data)}\n` });
              setState('finished');
              controller.abort();
            } else {
              add({ stream: payload.stream ?? 'stdout', text: payload.data ?? '' });
            }
          } else {
            const chunk = sessionChunk(payload);
            if (chunk) {
              add(chunk);
            }
            if (payload.msg_type === 'dead') {
              ended = true;
              setState('session ended');
              controller.abort();
            }
          }
        },
        {
          signal: controller.signal,
          onOpen: () => setState(s => (s === 'connecting…' ? 'live' : s)),
          reconnect: true
        }
      )
      .then(() => {
        if (!ended && !controller.signal.aborted) {
          setState('stream closed');
        }
      })
      .catch(err => setState(`error: ${errorText(err)}`));
    return () => controller.abort();
  }, [model, target.kind, target.boxId, target.id]);

  useEffect(() => {
    if (pre.current) {
      pre.current.scrollTop = pre.current.scrollHeight;
    }
  }, [chunks]);

  return (
    <div className="jp-BoxRun-output" aria-label="Output">
      <div className="jp-BoxRun-outputHeader">
        <code className="jp-BoxRun-cmd" title={target.id}>
          {target.title}
        </code>
        <span className="jp-BoxRun-itemMeta">{state}</span>
        <Button minimal small onClick={props.onClose} title="Close the output">
          ✕
        </Button>
      </div>
      <pre ref={pre} className="jp-BoxRun-outputText">
        {chunks.length === 0 && <span className="jp-BoxRun-hint">no output</span>}
        {chunks.map((c, i) => (
          <span key={i} className={`jp-BoxRun-out-${c.stream}`}>
            {stripAnsi(c.text)}
          </span>
        ))}
      </pre>
    </div>
  );
}
