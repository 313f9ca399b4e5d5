/**
 * The sidebar's state: the fleet, my slices and my jobs, refreshed by one Poll.
 *
 * The poll backs off on errors (Lumino's exponential backoff), goes to standby
 * while the browser tab is hidden, and slows to a status-bar heartbeat while the
 * sidebar itself is closed (then it only asks for my slices).
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  api,
  IInfo,
  IInventory,
  IJob,
  ILease,
  LIVE_LEASE_STATES,
  WorkbenchError,
  withZone
} from './api';

export const FAST_INTERVAL_MS = 2000;
export const SLOW_INTERVAL_MS = 30000;
/** How often the keep-alive looks for a slice to renew (it renews at the lease's `renew_at`). */
export const KEEPALIVE_INTERVAL_MS = 1000;
const AUTO_RENEW_OFF_KEY = 'gpu-workbench:auto-renew-off';

export class WorkbenchModel {
  info: IInfo | null = null;
  inventory: IInventory | null = null;
  slices: ILease[] = [];
  jobs: IJob[] = [];
  error: string | null = null;
  /** Errors the API answered for a service that is not installed (503) are shown per section. */
  sectionErrors: Record<string, string> = {};

  constructor() {
    this._poll = new Poll({
      auto: true,
      factory: () => this._fetch(),
      frequency: { interval: SLOW_INTERVAL_MS, backoff: true, max: 5 * 60 * 1000 },
      name: 'workbench:sidebar',
      standby: 'when-hidden'
    });
    // The keep-alive runs while JupyterLab is open, even with the sidebar closed or the tab
    // hidden: it renews my live slices at the `renew_at` the server computed (the core's rule),
    // unless I turned auto-renew off for one. Closing JupyterLab stops it; the slices then
    // expire one TTL after their last renewal.
    this._keepAlive = window.setInterval(() => void this._renewDue(), KEEPALIVE_INTERVAL_MS);
  }

  /** Whether the sidebar renews this slice while JupyterLab is open (on unless turned off). */
  autoRenew(id: string): boolean {
    return !this._autoRenewOff.has(id);
  }

  setAutoRenew(id: string, on: boolean): void {
    if (on) {
      this._autoRenewOff.delete(id);
    } else {
      this._autoRenewOff.add(id);
    }
    try {
      window.localStorage.setItem(AUTO_RENEW_OFF_KEY, JSON.stringify([...this._autoRenewOff]));
    } catch {
      // private mode or full storage: the choice holds until the page reloads
    }
    this._changed.emit();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The slice the status bar shows: my newest active one, else my newest queued one. */
  get currentSlice(): ILease | null {
    const live = this.slices.filter(s => LIVE_LEASE_STATES.includes(s.state));
    return live.find(s => s.state !== 'queued') || live[0] || null;
  }

  /** The sidebar is open: poll everything, often. */
  setDetailed(detailed: boolean): void {
    this._detailed = detailed;
    this._poll.frequency = {
      ...this._poll.frequency,
      interval: detailed ? FAST_INTERVAL_MS : SLOW_INTERVAL_MS
    };
    if (detailed) {
      void this._poll.refresh();
    }
  }

  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    window.clearInterval(this._keepAlive);
    this._poll.dispose();
  }

  private async _renewDue(): Promise<void> {
    if (this._renewing) {
      return;
    }
    const now = Date.now();
    const due = this.slices.filter(
      s => (s.state === 'active' || s.state === 'idle') && s.renew_at && this.autoRenew(s.id) &&
        Date.parse(withZone(s.renew_at)) <= now
    );
    if (!due.length) {
      return;
    }
    this._renewing = true;
    try {
      for (const lease of due) {
        try {
          const renewed = await api.renewSlice(lease.id);
          this.slices = this.slices.map(s => (s.id === renewed.id ? renewed : s));
        } catch {
          // ended meanwhile (released elsewhere, expired): the next poll shows it
          this.slices = this.slices.filter(s => s.id !== lease.id);
        }
      }
    } finally {
      this._renewing = false;
    }
    this._changed.emit();
  }

  private _readAutoRenewOff(): Set<string> {
    try {
      return new Set(JSON.parse(window.localStorage.getItem(AUTO_RENEW_OFF_KEY) || '[]') as string[]);
    } catch {
      return new Set();
    }
  }

  private async _fetch(): Promise<void> {
    try {
      if (!this.info) {
        this.info = await api.info();
      }
      const tasks: Promise<void>[] = [
        this._section('slices', async () => {
          this.slices = await api.slices();
        })
      ];
      if (this._detailed) {
        tasks.push(
          this._section('fleet', async () => {
            this.inventory = await api.devices();
          }),
          this._section('jobs', async () => {
            this.jobs = await api.jobs();
          })
        );
      }
      await Promise.all(tasks);
      this.error = null;
    } catch (error) {
      this.error = error instanceof Error ? error.message : String(error);
      this._changed.emit();
      throw error; // let the poll back off
    }
    this._changed.emit();
  }

  /** A 503 from one service (not installed, backend down) must not blank the others. */
  private async _section(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
      delete this.sectionErrors[name];
    } catch (error) {
      if (error instanceof WorkbenchError && error.status === 503) {
        this.sectionErrors[name] = error.message;
        return;
      }
      throw error;
    }
  }

  private _autoRenewOff = this._readAutoRenewOff();
  private _keepAlive: number;
  private _renewing = false;
  private _detailed = false;
  private _poll: Poll;
  private _changed = new Signal<this, void>(this);
}
