import { describe, expect, it } from 'vitest';

import {
  baseName,
  boxLabel,
  boxState,
  elapsed,
  execSummary,
  exitText,
  formatBytes,
  formatCmd,
  formatCpu,
  formatDuration,
  formatIsolation,
  formatMemoryMb,
  kernelBoxNames,
  kernelIdPrefixOf,
  nameProblem,
  parseVolumes,
  sessionSummary,
  splitName
} from '../format';
import { IBox, IExec, ISession } from '../types';

describe('sizes and rates', () => {
  it('formats bytes', () => {
    expect(formatBytes(null)).toBe('–');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(200 * 1024 * 1024)).toBe('200 MiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
  });
  it('formats megabytes', () => {
    expect(formatMemoryMb(512)).toBe('512 MiB');
    expect(formatMemoryMb(2048)).toBe('2 GiB');
    expect(formatMemoryMb(24105)).toBe('23.5 GiB');
    expect(formatMemoryMb(undefined)).toBe('–');
  });
  it('formats cpu', () => {
    expect(formatCpu(null)).toBe('–');
    expect(formatCpu(0)).toBe('0%');
    expect(formatCpu(0.25)).toBe('0.3%');
    expect(formatCpu(153.6)).toBe('154%');
  });
});

describe('isolation', () => {
  it('names each backend’s boundary', () => {
    expect(formatIsolation('gvisor')).toBe('gVisor user-space kernel isolation');
    expect(formatIsolation('vm')).toBe('micro-VM isolation');
    expect(formatIsolation('namespace')).toBe('namespace sandbox (shared kernel) isolation');
    expect(formatIsolation('other')).toBe('other isolation');
    expect(formatIsolation(undefined)).toBe('? isolation');
  });
});

describe('durations', () => {
  it('formats milliseconds', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(12_340)).toBe('12.3 s');
    expect(formatDuration(245_000)).toBe('4 min 05 s');
    expect(formatDuration(2 * 3600_000 + 3 * 60_000)).toBe('2 h 03 min');
    expect(formatDuration(null)).toBe('–');
    expect(formatDuration(-1)).toBe('–');
  });
  it('measures between RFC 3339 times, or until now', () => {
    expect(elapsed('2025-01-01T00:00:00Z', '2025-01-01T00:00:02.5Z')).toBe(2500);
    expect(elapsed('2025-01-01T00:00:00Z', null, Date.parse('2025-01-01T00:01:00Z'))).toBe(60_000);
    expect(elapsed(null, null)).toBeNull();
    expect(elapsed('garbage', null)).toBeNull();
  });
  it('summarises execs and sessions', () => {
    const ex: IExec = {
      id: 'exec_1',
      box_id: 'box_1',
      status: 'failed',
      cmd: ['false'],
      exit_code: 1,
      error_message: null,
      created_at: '2025-01-01T00:00:00Z',
      finished_at: '2025-01-01T00:00:01.5Z'
    };
    expect(execSummary(ex)).toBe('failed, exit 1 after 1.5 s');
    const running = { ...ex, status: 'running', exit_code: null, finished_at: null };
    expect(execSummary(running, Date.parse('2025-01-01T00:00:03Z'))).toBe('running for 3.0 s');
    const session: ISession = {
      id: 'sess_1',
      box_id: 'box_1',
      kind: 'ipykernel',
      status: 'dead',
      created_at: '2025-01-01T00:00:00Z',
      ended_at: '2025-01-01T00:00:00.2Z',
      error_message: 'the box stopped'
    };
    expect(sessionSummary(session)).toBe('dead after 200 ms: the box stopped');
  });
  it('reads exit events', () => {
    expect(exitText('{"exit_code": 0}')).toBe('[exit 0]');
    expect(exitText('{"exit_code": -1, "error": "timed out"}')).toBe('[exit -1: timed out]');
    expect(exitText('nonsense')).toBe('[exit: nonsense]');
  });
});

describe('names', () => {
  it('labels boxes', () => {
    expect(boxLabel({ id: 'box_1', name: null })).toBe('box_1');
    expect(boxLabel({ id: 'box_1', name: 'web' })).toBe('web');
  });
  it('knows the names of kernel boxes', () => {
    const id = '0123abcd-4567-89ab-cdef-0123456789ab';
    expect(kernelBoxNames(id)).toEqual([`jupyter-${id}`, 'kernel-0123abcd']);
    expect(kernelIdPrefixOf({ name: `jupyter-${id}` })).toBe(id);
    expect(kernelIdPrefixOf({ name: 'kernel-0123abcd' })).toBe('0123abcd');
    expect(kernelIdPrefixOf({ name: 'web' })).toBeNull();
    expect(kernelIdPrefixOf({ name: null })).toBeNull();
  });
  it('validates box names as the server does', () => {
    expect(nameProblem('')).toBeNull();
    expect(nameProblem('my-box_1.0')).toBeNull();
    expect(nameProblem('a'.repeat(64))).toMatch(/1–63/);
    expect(nameProblem('has space')).toMatch(/1–63/);
  });
  it('quotes command words that need it', () => {
    expect(formatCmd(['sh', '-c', "echo 'hi' there"])).toBe(`sh -c 'echo '\\''hi'\\'' there'`);
    expect(formatCmd(['python3', '-V'])).toBe('python3 -V');
  });
});

describe('parseVolumes', () => {
  it('parses host:guest[:ro] lines', () => {
    expect(parseVolumes('/data:/mnt/data:ro\n\n /src:/work ')).toEqual([
      { host_path: '/data', guest_path: '/mnt/data', readonly: true },
      { host_path: '/src', guest_path: '/work', readonly: false }
    ]);
    expect(parseVolumes('')).toEqual([]);
  });
  it('says what is wrong with a bad line', () => {
    expect(() => parseVolumes('data:/mnt')).toThrow(/absolute paths/);
    expect(() => parseVolumes('/a')).toThrow(/host_path:guest_path/);
  });
});

describe('names', () => {
  it('keeps the distinguishing end of a long name apart', () => {
    const name = 'jupyter-4f1c2a3b-9d8e-4c7b-a6f5-0e1d2c3b4a59';
    const [head, tail] = splitName(name);
    expect(head + tail).toBe(name);
    expect(tail).toBe('2c3b4a59');
    expect(splitName('analysis-2')).toEqual(['analysi', 's-2']);
    expect(splitName('abcde')).toEqual(['abcde', '']);
  });
  it('takes a path’s last part', () => {
    expect(baseName('work/deep/a.ipynb')).toBe('a.ipynb');
    expect(baseName('b.ipynb')).toBe('b.ipynb');
  });
});

describe('a kernel box’s state in the status bar', () => {
  const box = { id: 'box_1', name: 'jupyter-1', status: 'running' } as IBox;
  it('is the server’s state of the box when it is listed', () => {
    expect(boxState(box, undefined, 'old error', true)).toEqual({ state: 'running', title: '' });
    const stopped = { ...box, status: 'stopped', error_message: 'killed' };
    expect(boxState(stopped, undefined, undefined, true)).toEqual({
      state: 'stopped',
      title: 'killed'
    });
  });
  it('is failed with the reason when the create failed or was refused', () => {
    expect(boxState(undefined, 'boot failed', undefined, false)).toEqual({
      state: 'failed',
      title: 'boot failed'
    });
    const refused = 'could not open a box: not enough free memory';
    expect(boxState(undefined, undefined, refused, false).state).toBe('failed');
  });
  it('is starting before the box is listed, removed after', () => {
    expect(boxState(undefined, undefined, undefined, false).state).toBe('starting');
    expect(boxState(undefined, undefined, undefined, true).state).toBe('removed');
  });
});
