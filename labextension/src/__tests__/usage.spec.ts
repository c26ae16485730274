import type { KernelMessage } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';
import { describe, expect, it } from 'vitest';

import { IExecutedCell, applyUsage, recordCellUsage, replyUsage } from '../usage';

const USAGE = { wall_time_s: 1.503, peak_memory_bytes: 52_428_800, cpu_time_s: 0.21 };

function reply(metadata: Record<string, unknown>, status = 'ok'): KernelMessage.IExecuteReplyMsg {
  return {
    content: { status, execution_count: 1 },
    metadata
  } as unknown as KernelMessage.IExecuteReplyMsg;
}

/** A cell whose metadata is a plain object, and whose last request got `answer`. */
function cell(
  source: string,
  answer: Promise<KernelMessage.IExecuteReplyMsg> | null,
  metadata: Record<string, unknown> = {},
  type = 'code'
) {
  const changes: string[] = [];
  const fake: IExecutedCell = {
    model: {
      type,
      sharedModel: { getSource: () => source },
      getMetadata: key => metadata[key],
      setMetadata: (key, value) => {
        changes.push(`set ${key}`);
        metadata[key] = value;
      },
      deleteMetadata: key => {
        changes.push(`delete ${key}`);
        delete metadata[key];
      }
    },
    outputArea: { future: answer ? { done: answer } : null }
  };
  return { fake, metadata, changes };
}

/** Emit `executed` for `fake` and let the recorder finish. */
async function execute(fake: IExecutedCell): Promise<void> {
  const executed = new Signal<unknown, { cell: IExecutedCell }>({});
  recordCellUsage(executed);
  executed.emit({ cell: fake });
  await new Promise(resolve => setTimeout(resolve, 0));
}

describe('replyUsage', () => {
  it('takes boxrun_usage from the reply metadata', () => {
    expect(replyUsage(reply({ started: 'x', boxrun_usage: USAGE }))).toEqual(USAGE);
    const unknown = { wall_time_s: 0.01, peak_memory_bytes: null, cpu_time_s: null };
    expect(replyUsage(reply({ boxrun_usage: unknown }))).toEqual(unknown);
    expect(replyUsage(reply({ boxrun_usage: USAGE }, 'error'))).toEqual(USAGE);
  });

  it('is null for other kernels, aborted requests and odd values', () => {
    expect(replyUsage(reply({ started: 'x' }))).toBeNull();
    expect(replyUsage(reply({ boxrun_usage: USAGE }, 'aborted'))).toBeNull();
    expect(replyUsage(reply({ boxrun_usage: 'lots' }))).toBeNull();
    expect(replyUsage(reply({ boxrun_usage: [1, 2, 3] }))).toBeNull();
    expect(replyUsage(reply({ boxrun_usage: { ...USAGE, wall_time_s: '1' } }))).toBeNull();
    const noPeak = { ...USAGE, peak_memory_bytes: undefined };
    expect(replyUsage(reply({ boxrun_usage: noPeak }))).toBeNull();
    expect(replyUsage(undefined)).toBeNull();
  });
});

describe('applyUsage', () => {
  it('sets the usage, drops a stale one, leaves other cells alone', () => {
    const { fake, metadata, changes } = cell('1', null, { tags: ['a'] });
    applyUsage(fake.model, null);
    expect(changes).toEqual([]);
    applyUsage(fake.model, USAGE);
    expect(metadata).toEqual({ tags: ['a'], boxrun: USAGE });
    applyUsage(fake.model, null);
    expect(metadata).toEqual({ tags: ['a'] });
  });
});

describe('recordCellUsage', () => {
  it('records the usage of an executed code cell', async () => {
    const { fake, metadata } = cell('6 * 7', Promise.resolve(reply({ boxrun_usage: USAGE })));
    await execute(fake);
    expect(metadata.boxrun).toEqual(USAGE);
  });

  it('drops the usage of a run when the next one has none', async () => {
    const { fake, metadata } = cell('6 * 7', Promise.resolve(reply({})), { boxrun: USAGE });
    await execute(fake);
    expect(metadata).toEqual({});
  });

  it('changes nothing for a kernel without usage', async () => {
    const { fake, changes } = cell('6 * 7', Promise.resolve(reply({ started: 'x' })));
    await execute(fake);
    expect(changes).toEqual([]);
  });

  it('does not take the last run of a blank cell as its own', async () => {
    const last = Promise.resolve(reply({ boxrun_usage: USAGE }));
    const { fake, metadata } = cell('  \n', last, { boxrun: USAGE });
    await execute(fake);
    expect(metadata).toEqual({});
  });

  it('treats a request that never got its reply as having no usage', async () => {
    const { fake, metadata } = cell('6 * 7', Promise.reject(new Error('Canceled')), {
      boxrun: USAGE
    });
    await execute(fake);
    expect(metadata).toEqual({});
  });

  it('ignores markdown cells', async () => {
    const { fake, changes } = cell('# title', null, { boxrun: USAGE }, 'markdown');
    await execute(fake);
    expect(changes).toEqual([]);
  });
});
