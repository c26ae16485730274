import type { KernelMessage } from '@jupyterlab/services';
import { describe, expect, it } from 'vitest';

import { formatAge } from '../format';
import {
  IMagicOutput,
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
} from '../snapshots';
import { applyUsage } from '../usage';

function model(metadata: Record<string, unknown> = {}) {
  return {
    metadata,
    getMetadata: (key: string) => metadata[key],
    setMetadata: (key: string, value: unknown) => {
      metadata[key] = value;
    },
    deleteMetadata: (key: string) => {
      delete metadata[key];
    }
  };
}

const SNAP = { name: 'cell-1a2b3c4d', box: 'jupyter-k1', memory: true, created_at: '2026-12-02T01:00:00Z' };

function iopub(msg_type: string, content: Record<string, unknown>): KernelMessage.IIOPubMessage {
  return { header: { msg_type }, content } as unknown as KernelMessage.IIOPubMessage;
}

describe('cell snapshots in metadata', () => {
  it('names a snapshot after the cell id, with only characters the API accepts', () => {
    expect(snapshotName('1a2b3c4d-5e6f-7a8b')).toBe('cell-1a2b3c4d');
    expect(snapshotName('a/b c;d$e"f_g.h')).toBe('cell-abcdef_g');
    expect(snapshotName('////')).toBe('cell-x');
  });

  it('keeps the snapshot beside the usage, and the usage beside the snapshot', () => {
    const m = model({ boxrun: { wall_time_s: 1, peak_memory_bytes: null, cpu_time_s: null } });
    setCellSnapshot(m, SNAP);
    expect(cellSnapshot(m)).toEqual(SNAP);
    expect((m.metadata.boxrun as any).wall_time_s).toBe(1);
    // A new run's usage replaces the old usage, not the snapshot.
    applyUsage(m, { wall_time_s: 2, peak_memory_bytes: 5, cpu_time_s: 0.1 });
    expect(cellSnapshot(m)).toEqual(SNAP);
    expect((m.metadata.boxrun as any).wall_time_s).toBe(2);
    // A run without usage drops the usage only.
    applyUsage(m, null);
    expect(m.metadata.boxrun).toEqual({ snapshot: SNAP });
    setCellSnapshot(m, null);
    expect(cellSnapshot(m)).toBeNull();
    applyUsage(m, null);
    expect(m.metadata.boxrun).toBeUndefined();
  });

  it('ignores malformed snapshot metadata (a notebook is anyone’s file)', () => {
    expect(cellSnapshot(model())).toBeNull();
    expect(cellSnapshot(model({ boxrun: 'x' }))).toBeNull();
    expect(cellSnapshot(model({ boxrun: { snapshot: { name: 3, box: 'b' } } }))).toBeNull();
    expect(cellSnapshot(model({ boxrun: { snapshot: { name: 'n', box: 'b', memory: 'yes' } } }))).toEqual({
      name: 'n',
      box: 'b',
      memory: false,
      created_at: ''
    });
  });
});

describe('%boxrun lines and what they print', () => {
  it('quotes arguments for the kernel’s parser', () => {
    expect(boxrunLine('fork', 'cell-1', '-b', 'jupyter-k1', '--name', 'x-b1')).toBe(
      '%boxrun fork cell-1 -b jupyter-k1 --name x-b1'
    );
    expect(boxrunLine('use', "it's; rm -rf /")).toBe(`%boxrun use 'it'\\''s; rm -rf /'`);
  });

  it('collects streams and errors, and tells success by them', () => {
    const out: IMagicOutput = { stdout: '', stderr: '', error: null };
    collectOutput(iopub('stream', { name: 'stdout', text: 'snapshot cell-1 of box b: 1.0 MB, ' }), out);
    collectOutput(iopub('stream', { name: 'stdout', text: 'its disk only\n' }), out);
    collectOutput(iopub('status', { execution_state: 'idle' }), out);
    expect(out.stdout).toBe('snapshot cell-1 of box b: 1.0 MB, its disk only\n');
    expect(succeeded(out)).toBe(true);
    expect(snapshotMemory(out.stdout)).toBe(false);
    collectOutput(iopub('stream', { name: 'stderr', text: 'no such snapshot' }), out);
    expect(succeeded(out)).toBe(false);
    const failed: IMagicOutput = { stdout: '', stderr: '', error: null };
    collectOutput(iopub('error', { ename: 'UsageError', evalue: 'bad', traceback: [] }), failed);
    expect(failed.error).toBe('UsageError: bad');
    expect(succeeded(failed)).toBe(false);
  });

  it('reads the memory flag and the fork’s name', () => {
    expect(snapshotMemory('snapshot s of box b: 3.2 MB, processes and memory included')).toBe(true);
    expect(snapshotMemory('something else')).toBeNull();
    expect(
      forkedBox('box nb-b1 (box_123) is a fork of snapshot s of box b, running; %boxrun use nb-b1 …')
    ).toBe('nb-b1');
    expect(forkedBox('box b is the current box')).toBeNull();
    expect(
      forkedSession(
        'box nb-b1 (box_1) is a fork of snapshot s of box b, running; %boxrun use nb-b1 ' +
          '--attach sess_AbC-12_x runs the next cells there, on this interpreter’s copy'
      )
    ).toBe('sess_AbC-12_x');
    expect(forkedSession('box nb-b1 (box_1) is a fork …; %boxrun use nb-b1 runs the next cells there')).toBeNull();
  });
});

describe('branches', () => {
  it('picks the first free name next to the notebook', () => {
    expect(branchPath('work/an.ipynb', [])).toBe('work/an-branch-1.ipynb');
    expect(branchPath('an.ipynb', ['an-branch-1.ipynb', 'an-branch-3.ipynb'])).toBe('an-branch-2.ipynb');
  });

  it('names the fork within 63 characters', () => {
    expect(branchBoxName('jupyter-k1', 2)).toBe('jupyter-k1-b2');
    const long = branchBoxName(`jupyter-${'a'.repeat(60)}`, 12);
    expect(long.length).toBe(63);
    expect(long.endsWith('-b12')).toBe(true);
  });

  it('copies the cells up to the branch point, adds an empty one, and names the fork', () => {
    const nb = {
      nbformat: 4,
      metadata: { kernelspec: { name: 'boxrun' } },
      cells: ['a', 'b', 'c'].map(source => ({
        cell_type: 'code',
        source,
        metadata: {} as Record<string, any>,
        outputs: []
      }))
    };
    nb.cells[0].metadata = { boxrun: { snapshot: SNAP, wall_time_s: 1 }, tags: ['t'] };
    const branch = branchNotebook(nb, 1, 'jupyter-k1-b1');
    expect(branch.cells[0].metadata).toEqual({ boxrun: { wall_time_s: 1 }, tags: ['t'] });
    expect(nb.cells[0].metadata.boxrun.snapshot).toEqual(SNAP);
    expect(branch.cells.map((c: any) => c.source)).toEqual(['a', 'b', '']);
    expect(branch.metadata.kernelspec).toEqual({ name: 'boxrun' });
    expect(branchBox(branch.metadata)).toBe('jupyter-k1-b1');
    expect(nb.cells.length).toBe(3);
    expect(branchBox(nb.metadata)).toBeNull();
    expect(branchBox({ boxrun: { branch_of: 7 } })).toBeNull();
    expect(branchSession(branch.metadata)).toBeNull();
  });

  it('records the session whose interpreter the fork carries', () => {
    const branch = branchNotebook({ metadata: {}, cells: [] }, 0, 'k-b1', 'sess_x');
    expect(branch.metadata.boxrun).toEqual({ branch_of: 'k-b1', branch_session: 'sess_x' });
    expect(branchSession(branch.metadata)).toBe('sess_x');
    expect(branchSession({ boxrun: { branch_session: ['sess_x'] } })).toBeNull();
  });
});

describe('formatAge', () => {
  it('says how long ago, shortly', () => {
    const now = Date.parse('2026-12-02T01:00:00Z');
    expect(formatAge('2026-12-02T00:59:20Z', now)).toBe('40 s');
    expect(formatAge('2026-12-02T00:55:00Z', now)).toBe('5 min');
    expect(formatAge('2026-12-01T22:00:00Z', now)).toBe('3 h');
    expect(formatAge('2026-11-29T01:00:00Z', now)).toBe('3 d');
    expect(formatAge(null, now)).toBe('–');
    expect(formatAge('garbage', now)).toBe('–');
  });
});
