/** The create-box form: image picker, name, cpu, memory, network, volumes. */

import { Button, HTMLSelect, InputGroup } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { errorText } from './api';
import { formatBytes, nameProblem, parseVolumes } from './format';
import { useNow } from './hooks';
import { BoxRunModel } from './model';
import { IImage } from './types';

export interface ICreateFormProps {
  model: BoxRunModel;
  onClose: () => void;
}

export function CreateForm(props: ICreateFormProps): JSX.Element {
  const { model } = props;
  const [images, setImages] = useState<IImage[] | null>(null);
  const [imagesError, setImagesError] = useState<string | null>(null);
  const [image, setImage] = useState('');
  const [name, setName] = useState('');
  const [cpu, setCpu] = useState('1');
  const [memory, setMemory] = useState('512');
  const [network, setNetwork] = useState(false);
  const [volumes, setVolumes] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [started, setStarted] = useState(0);
  const now = useNow(250, creating);

  useEffect(() => {
    let live = true;
    model.client
      .images()
      .then(list => {
        if (!live) {
          return;
        }
        setImages(list);
        const preferred = list.find(i => i.name === 'python') ?? list[0];
        setImage(current => current || (preferred ? preferred.ref : 'python'));
      })
      .catch(err => {
        if (live) {
          setImages([]);
          setImagesError(errorText(err));
          setImage(current => current || 'python');
        }
      });
    return () => {
      live = false;
    };
  }, [model]);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const cpuValue = Number(cpu);
    const memoryValue = Number(memory);
    let problemText = nameProblem(name.trim());
    let volumeList: ReturnType<typeof parseVolumes> = [];
    if (!problemText && !image.trim()) {
      problemText = 'Choose an image.';
    }
    if (!problemText && !(Number.isInteger(cpuValue) && cpuValue > 0)) {
      problemText = 'CPU must be a whole number of cores, at least 1.';
    }
    if (!problemText && !(Number.isInteger(memoryValue) && memoryValue > 0)) {
      problemText = 'Memory must be a whole number of MiB, at least 1.';
    }
    if (!problemText) {
      try {
        volumeList = parseVolumes(volumes);
      } catch (err) {
        problemText = errorText(err);
      }
    }
    setProblem(problemText);
    if (problemText) {
      return;
    }
    setCreating(true);
    setStarted(Date.now());
    try {
      await model.create({
        image: image.trim(),
        name: name.trim() || undefined,
        cpu: cpuValue,
        memory_mb: memoryValue,
        network,
        volumes: volumeList
      });
      setName('');
      props.onClose();
    } catch (err) {
      setProblem(`Could not create the box: ${errorText(err)}`);
    } finally {
      setCreating(false);
    }
  };

  const seconds = ((now - started) / 1000).toFixed(1);
  return (
    <form className="jp-BoxRun-create" onSubmit={submit} aria-label="Create a box">
      <div className="jp-BoxRun-formTitle">New box</div>
      <label>
        <span>Image</span>
        {images && images.length > 0 ? (
          <HTMLSelect
            className="jp-BoxRun-image"
            value={image}
            onChange={e => setImage(e.currentTarget.value)}
            disabled={creating}
            options={images.map(i => ({
              value: i.ref,
              label: `${i.ref}${i.size_bytes ? ` (${formatBytes(i.size_bytes)})` : ''}`
            }))}
          />
        ) : (
          <InputGroup
            className="jp-BoxRun-image"
            value={image}
            placeholder={images === null ? 'loading images…' : 'image, e.g. python'}
            onChange={e => setImage(e.currentTarget.value)}
            disabled={creating}
          />
        )}
      </label>
      {images && images.length === 0 && (
        <div className="jp-BoxRun-hint">
          {imagesError
            ? `Cannot list images: ${imagesError}`
            : 'No local images yet; `boxrun image build python` builds one.'}
        </div>
      )}
      <label>
        <span>Name</span>
        <InputGroup
          name="name"
          value={name}
          placeholder="optional"
          onChange={e => setName(e.currentTarget.value)}
          disabled={creating}
        />
      </label>
      <div className="jp-BoxRun-formRow">
        <label>
          <span>CPU</span>
          <InputGroup
            name="cpu"
            type="number"
            min={1}
            value={cpu}
            onChange={e => setCpu(e.currentTarget.value)}
            disabled={creating}
          />
        </label>
        <label>
          <span>Memory (MiB)</span>
          <InputGroup
            name="memory"
            type="number"
            min={1}
            value={memory}
            onChange={e => setMemory(e.currentTarget.value)}
            disabled={creating}
          />
        </label>
      </div>
      <label className="jp-BoxRun-check">
        <input
          type="checkbox"
          name="network"
          checked={network}
          onChange={e => setNetwork(e.currentTarget.checked)}
          disabled={creating}
        />
        <span>Network access</span>
      </label>
      <label>
        <span>Volumes</span>
        <textarea
          name="volumes"
          className="jp-BoxRun-volumes"
          value={volumes}
          placeholder="/host/path:/guest/path[:ro], one per line"
          rows={2}
          onChange={e => setVolumes(e.currentTarget.value)}
          disabled={creating}
        />
      </label>
      {problem && (
        <div className="jp-BoxRun-error" role="alert">
          {problem}
        </div>
      )}
      {creating && (
        <div className="jp-BoxRun-progress" role="status">
          <span className="jp-BoxRun-spinner" /> Resolving the image and booting the box…{' '}
          {seconds} s
        </div>
      )}
      <div className="jp-BoxRun-formButtons">
        <Button type="button" minimal small onClick={props.onClose} disabled={creating}>
          Cancel
        </Button>
        <Button type="submit" small className="jp-mod-accept" disabled={creating}>
          {creating ? 'Creating…' : 'Create'}
        </Button>
      </div>
    </form>
  );
}
