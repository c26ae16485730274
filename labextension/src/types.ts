/** The BoxRun API's objects, as the server sends them (docs/api.md, boxrun-api.md). */

export type BoxStatus = 'creating' | 'running' | 'stopped' | string;

export interface IVolume {
  host_path: string;
  guest_path: string;
  readonly?: boolean;
}

export interface IBox {
  id: string;
  name: string | null;
  status: BoxStatus;
  image: string;
  cpu: number;
  memory_mb: number;
  disk_size_gb: number | null;
  network: boolean;
  workdir: string | null;
  env: Record<string, string> | null;
  volumes: IVolume[] | null;
  boxlite_id: string | null;
  error_code: string | null;
  error_message: string | null;
  created_at: string | null;
  started_at: string | null;
  stopped_at: string | null;
  /** The snapshot (id) the box is a fork of, or null. */
  snapshot?: string | null;
}

export interface IBoxRequest {
  image: string;
  name?: string;
  cpu?: number;
  memory_mb?: number;
  network?: boolean;
  volumes?: IVolume[];
}

export interface IExec {
  id: string;
  box_id: string;
  status: 'running' | 'succeeded' | 'failed' | 'canceled' | string;
  cmd: string[];
  exit_code: number | null;
  error_message: string | null;
  created_at: string | null;
  finished_at: string | null;
}

export interface ISession {
  id: string;
  box_id: string;
  kind: string;
  status: 'starting' | 'idle' | 'busy' | 'dead' | string;
  cwd?: string | null;
  created_at: string | null;
  ended_at: string | null;
  error_message: string | null;
}

/** A snapshot of a box (`GET /v1/boxes/{id}/snapshots`). */
export interface ISnapshot {
  id: string;
  name: string;
  box_id: string;
  /** Whether processes and memory are in it, not only the disk. */
  memory: boolean;
  size_bytes: number;
  created_at: string;
}

export interface IInfo {
  max_cpu: number;
  max_memory_mb: number;
  used_cpu?: number;
  used_memory_mb?: number;
  reserved_memory_mb?: number;
  committed_cpu?: number;
  max_committed_cpu?: number;
  cpu_overcommit?: number;
  backend?: string;
  /** Why this backend: the configuration, or why `auto` took no stronger one. */
  backend_reason?: string;
  isolation?: string;
  limitations?: string[] | string;
  version?: string;
}

export interface IImage {
  name: string;
  ref: string;
  description?: string;
  size_bytes?: number;
}

export interface IMetrics {
  box_id: string;
  status?: string;
  at?: string;
  cpu_percent: number | null;
  cpu_limit?: number | null;
  memory_bytes: number | null;
  memory_limit_bytes?: number | null;
  pids?: number | null;
}

/** A lifecycle event of `GET /v1/events`. */
export interface ILifecycleEvent {
  type: 'created' | 'started' | 'stopped' | 'died' | 'removed' | 'failed' | string;
  box: IBox;
  at: string;
}
