import { describe, expect, it } from 'vitest';

import { parseControl } from '../control';
import { applyLifecycle, lifecycleProblem, sortBoxes } from '../model';
import { IBox } from '../types';

function box(id: string, status: string, created_at = '2025-01-01T00:00:00Z'): IBox {
  return { id, name: id, status, image: 'local/debian', created_at } as IBox;
}

describe('applyLifecycle', () => {
  it('adds, updates and removes boxes', () => {
    const boxes = new Map<string, IBox>();
    applyLifecycle(boxes, { type: 'created', box: box('a', 'creating'), at: '' });
    expect(boxes.get('a')?.status).toBe('creating');
    applyLifecycle(boxes, { type: 'started', box: box('a', 'running'), at: '' });
    expect(boxes.get('a')?.status).toBe('running');
    applyLifecycle(boxes, { type: 'stopped', box: box('a', 'stopped'), at: '' });
    expect(boxes.get('a')?.status).toBe('stopped');
    applyLifecycle(boxes, { type: 'removed', box: box('a', 'stopped'), at: '' });
    expect(boxes.has('a')).toBe(false);
  });

  it('drops a box whose create failed, keeps one whose start failed', () => {
    const boxes = new Map<string, IBox>();
    applyLifecycle(boxes, { type: 'failed', box: box('a', 'creating'), at: '' });
    expect(boxes.has('a')).toBe(false);
    applyLifecycle(boxes, { type: 'failed', box: box('b', 'stopped'), at: '' });
    expect(boxes.get('b')?.status).toBe('stopped');
  });
});

describe('lifecycleProblem', () => {
  it('says why a box died or failed, nothing for other events', () => {
    const dead = {
      ...box('d', 'stopped'),
      error_code: 'BOX_DIED',
      error_message: 'the box died: out of memory'
    };
    expect(lifecycleProblem({ type: 'died', box: dead, at: '' })).toBe(
      'd: the box died: out of memory'
    );
    expect(lifecycleProblem({ type: 'stopped', box: box('s', 'stopped'), at: '' })).toBeNull();
    const boxes = new Map<string, IBox>();
    applyLifecycle(boxes, { type: 'died', box: dead, at: '' });
    expect(boxes.get('d')?.error_code).toBe('BOX_DIED');
  });
});

describe('sortBoxes', () => {
  it('lists newest first', () => {
    const list = sortBoxes([
      box('old', 'running', '2025-01-01T00:00:00Z'),
      box('new', 'running', '2025-02-01T00:00:00Z')
    ]);
    expect(list.map(b => b.id)).toEqual(['new', 'old']);
  });
});

describe('parseControl', () => {
  it('reads the attach socket control messages', () => {
    expect(parseControl('{"type": "exit", "code": 3}')).toEqual({ type: 'exit', code: 3 });
    expect(parseControl('{"type": "error", "code": "BOX_NOT_RUNNING", "message": "no"}')).toEqual({
      type: 'error',
      code: 'BOX_NOT_RUNNING',
      message: 'no'
    });
    expect(parseControl('not json').type).toBe('unknown');
    expect(parseControl('{"type": "resize"}').type).toBe('unknown');
  });
});
