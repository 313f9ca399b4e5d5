/**
 * A typed client for the workbench REST API served by `workbench.jupyter`
 * under `{base_url}workbench/api/`. Requests go through Jupyter's
 * ServerConnection, so the token, the XSRF header and a hub prefix are handled
 * exactly as for Jupyter's own APIs.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { components } from './schema';

export interface IMigProfile {
  name: string;
  compute_slices: number;
  memory_slices: number;
  memory_bytes: number;
  max_count: number;
}

export interface IDevice {
  key: string;
  node: string;
  index: number;
  kind: 'gpu' | 'cpu';
  model: string;
  memory_bytes: number | null;
  mig: boolean;
  mig_capable: boolean;
  cores: number | null;
  utilization_pct: number | null;
  memory_used_bytes: number | null;
  mig_profiles: IMigProfile[];
}

/** What can be requested on each kind of device: the core's offers (generated from the OpenAPI document). */
export type IDeviceOffers = components['schemas']['DeviceOffers'];

export interface IInventory {
  source: string;
  gpu_count: number;
  nodes: { name: string; devices: string[] }[];
  devices: IDevice[];
  offers: IDeviceOffers[];
}

export interface ILease {
  id: string;
  owner: string;
  project?: string;
  kind: string;
  state: string;
  node?: string | null;
  device_keys?: string[];
  profile?: string | null;
  gpu_milli?: number;
  cpu_milli?: number;
  expires_at?: string | null;
  /** When a face that shows this lease renews it (the core's keep-alive rule). */
  renew_at?: string | null;
  reason?: string | null;
  request?: { spec?: string | number } & Record<string, unknown>;
  spec?: string;
}

export interface IJob {
  id: string;
  name?: string;
  owner: string;
  state: string;
  error?: string | null;
  lease_id?: string | null;
  slice_spec?: string | null;
  target?: string;
  created_at?: string | null;
  started_at?: string | null;
  ended_at?: string | null;
}

export type ILogChunk = components['schemas']['LogChunk'];

export type IInfo = components['schemas']['Info'];

/** An error answered by the API: `error` is a sentence for a person. */
export class WorkbenchError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason: string
  ) {
    super(message);
  }
}

const settings = ServerConnection.makeSettings();

export function apiUrl(path: string): string {
  return URLExt.join(settings.baseUrl, 'workbench', 'api', path);
}

export async function request<T>(
  path: string,
  method: 'GET' | 'POST' | 'DELETE' = 'GET',
  body?: unknown
): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(apiUrl(path), init, settings);
  } catch (error) {
    throw new WorkbenchError(0, `The Jupyter server cannot be reached: ${error}`, 'network');
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message =
      (data && (data.error || data.message)) ||
      `${response.status} ${response.statusText}`;
    throw new WorkbenchError(response.status, message, (data && data.reason) || '');
  }
  return data as T;
}

export const api = {
  info: () => request<IInfo>(''),
  devices: () => request<IInventory>('devices'),
  slices: () => request<{ slices: ILease[] }>('slices').then(r => r.slices),
  requestSlice: (body: Partial<components['schemas']['SliceRequestBody']> & { spec: string | number }) => request<ILease>('slices', 'POST', body),
  renewSlice: (id: string) => request<ILease>(`slices/${id}/renew`, 'POST'),
  releaseSlice: (id: string) => request<ILease>(`slices/${id}`, 'DELETE'),
  jobs: () => request<{ jobs: IJob[] }>('jobs').then(r => r.jobs),
  submitJob: (target: string, slice?: string) =>
    request<IJob>('jobs', 'POST', slice ? { target, slice } : { target }),
  job: (id: string) => request<IJob>(`jobs/${id}`),
  cancelJob: (id: string) => request<IJob>(`jobs/${id}/cancel`, 'POST'),
  logs: (id: string, offset: number) =>
    request<ILogChunk>(`jobs/${id}/logs?offset=${offset}`)
};

/** "1.5 GiB", "80 GiB" */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) {
    return '?';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 || unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** "42 s", "3 min 5 s", "2 h 10 min" between two ISO times (or until now). */
export function formatElapsed(start?: string | null, end?: string | null): string {
  if (!start) {
    return '';
  }
  const t0 = Date.parse(withZone(start));
  const t1 = end ? Date.parse(withZone(end)) : Date.now();
  const s = Math.max(0, Math.round((t1 - t0) / 1000));
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${s % 60} s`;
  }
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** The store keeps naive UTC times; treat a time without a zone as UTC. */
export function withZone(iso: string): string {
  return /[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`;
}

export const TERMINAL_JOB_STATES = ['succeeded', 'failed', 'cancelled', 'preempted'];
export const LIVE_LEASE_STATES = ['queued', 'active', 'idle'];

export function sliceLabel(lease: ILease): string {
  if (lease.kind === 'mig' && lease.profile) {
    return `MIG ${lease.profile}`;
  }
  if (lease.kind === 'cpu') {
    return `CPU ×${((lease.cpu_milli || 1000) / 1000).toString()}`;
  }
  if (lease.kind === 'fraction') {
    return `${((lease.gpu_milli || 0) / 1000).toString()} GPU`;
  }
  if (lease.kind === 'whole') {
    const n = lease.device_keys?.length || 1;
    return `${n} whole GPU${n > 1 ? 's' : ''}`;
  }
  return lease.kind;
}
